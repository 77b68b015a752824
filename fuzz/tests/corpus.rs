//! Every committed input through its target, as an ordinary test on the stable toolchain: the
//! seeds in `corpus/<target>/` and the inputs of past findings in `regressions/<target>/`. A
//! panic fails the test with the files that caused it, and so does a target without seeds, a
//! folder without a target, or a target without its libFuzzer binary.

use std::path::{Path, PathBuf};

use fedcare_fuzz::{TARGETS, Target};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The files in `dir`, sorted (none when it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> =
        entries.map(|e| e.expect("a readable folder").path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// The folders in `dir`, by name.
fn folders(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .map(|e| e.expect("a readable folder").path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().expect("a folder name").to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs every file of `dir` through `target`; returns the files that panicked, with why.
fn run_all(target: &Target, dir: &Path) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let inputs = files(dir);
    for path in &inputs {
        let bytes = std::fs::read(path).expect("a readable input");
        if let Err(panic) = std::panic::catch_unwind(|| (target.run)(&bytes)) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {why}", path.display()));
        }
    }
    (inputs.len(), failures)
}

#[test]
fn every_committed_input_runs_through_its_target_without_a_panic() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let (seeds, mut failed) = run_all(target, &root().join("corpus").join(target.name));
        if seeds == 0 {
            failures.push(format!("{}: no seed in corpus/{}", target.name, target.name));
        }
        failures.append(&mut failed);
        let (_, mut failed) = run_all(target, &root().join("regressions").join(target.name));
        failures.append(&mut failed);
    }
    assert!(failures.is_empty(), "{} input(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_folder_has_a_target_and_every_target_a_libfuzzer_binary() {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    for kind in ["corpus", "regressions"] {
        for folder in folders(&root().join(kind)) {
            assert!(names.contains(&folder.as_str()), "{kind}/{folder} belongs to no target");
        }
    }
    let manifest = std::fs::read_to_string(root().join("libfuzzer/Cargo.toml")).expect("the libFuzzer manifest");
    for target in TARGETS {
        let path = root().join("libfuzzer/fuzz_targets").join(format!("{}.rs", target.name));
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            source.contains(&format!("fedcare_fuzz::{}(data)", target.name)),
            "{} does not call fedcare_fuzz::{}",
            path.display(),
            target.name
        );
        assert!(
            manifest.contains(&format!("name = \"{}\"", target.name)),
            "libfuzzer/Cargo.toml has no [[bin]] {}",
            target.name
        );
    }
    let binaries = files(&root().join("libfuzzer/fuzz_targets"));
    assert_eq!(binaries.len(), TARGETS.len(), "a libFuzzer binary without a target: {binaries:?}");
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "two targets of one name");
}

#[test]
fn the_small_schema_is_valid_and_repair_fixes_an_envelope() {
    fedcare_data::Schema::from_toml(fedcare_fuzz::SMALL_SCHEMA).expect("the small schema");
    let sealed = fedcare_core::model_file::FORMAT.seal(b"payload").expect("a small payload");
    assert_eq!(fedcare_fuzz::repaired(&sealed).as_deref(), Some(sealed.as_slice()), "a sound envelope is kept");
    let mut changed = sealed.clone();
    changed[20] ^= 1;
    let fixed = fedcare_fuzz::repaired(&changed).expect("a header");
    assert_eq!(fedcare_core::model_file::FORMAT.open(&fixed, 1 << 10).expect("a repaired envelope"), b"paxload");
    assert_eq!(fedcare_fuzz::repaired(&sealed[..17]), None, "no header, nothing to repair");
}
