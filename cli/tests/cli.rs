//! The command line as a user meets it: logistic regression from `--hidden ''` (its held-out
//! share recorded in the model file), clear refusals of bad arguments, keys that are never
//! overwritten, one file split into sites that train a federation (its top_k columns under a
//! consortium key) whose model is scored on the held-out patients.

use std::path::Path;
use std::process::{Command, Output};

fn fedcare(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fedcare")).args(args).current_dir(dir).output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn an_empty_hidden_list_simulates_logistic_regression() {
    let dir = tempfile::tempdir().unwrap();
    let run = fedcare(
        &[
            "simulate",
            "--hospitals",
            "2",
            "--rounds",
            "1",
            "--rows",
            "200",
            "--hidden",
            "",
            "--test-fraction",
            "0.3",
            "--out",
            "lr",
        ],
        dir.path(),
    );
    assert!(run.status.success(), "{}", text(&run));
    let inspect = fedcare(&["inspect", "lr/model.bin"], dir.path());
    assert!(inspect.status.success(), "{}", text(&inspect));
    let description = String::from_utf8_lossy(&inspect.stdout);
    assert!(description.contains("logistic regression 359-1"), "{description}");
    assert!(description.contains("parameters: 360"), "{description}");
    assert!(description.contains("scaling:    10 numeric inputs"), "{description}");
    assert!(description.contains("endorsed:   by 2 hospitals"), "{description}");
    assert!(description.contains("test_fraction = 0.3"), "{description}");
    // The endorsing hospitals and their keys, as a roster: checked; with one key changed: refused.
    let members: String = description
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_once(" sha256:"))
        .map(|(name, pin)| format!("{} = \"sha256:{pin}\"\n", name.trim()))
        .collect();
    std::fs::write(dir.path().join("members.toml"), &members).unwrap();
    let roster = fedcare(&["inspect", "lr/model.bin", "--members", "members.toml"], dir.path());
    assert!(text(&roster).contains("every endorsing hospital is on it"), "{}\n{members}", text(&roster));
    let first_pin = members.find("sha256:").unwrap() + 7;
    let mut wrong = members.clone();
    wrong.replace_range(first_pin..first_pin + 1, if &members[first_pin..first_pin + 1] == "0" { "1" } else { "0" });
    std::fs::write(dir.path().join("members.toml"), &wrong).unwrap();
    let roster = fedcare(&["inspect", "lr/model.bin", "--members", "members.toml"], dir.path());
    assert!(!roster.status.success() && text(&roster).contains("the roster pins"), "{}", text(&roster));
    // One byte of one parameter changed (the checksum made to fit): inspect says so and fails.
    let mut model =
        fedcare_core::ModelFile::from_bytes(&std::fs::read(dir.path().join("lr/model.bin")).unwrap()).unwrap();
    model.params[3] = -model.params[3] + 1.0;
    std::fs::write(dir.path().join("tampered.bin"), model.to_bytes().unwrap()).unwrap();
    let tampered = fedcare(&["inspect", "tampered.bin"], dir.path());
    assert!(!tampered.status.success(), "{}", text(&tampered));
    assert!(text(&tampered).contains("endorsed another model file"), "{}", text(&tampered));

    let zero = fedcare(&["simulate", "--hidden", "0"], dir.path());
    assert!(!zero.status.success());
    assert!(text(&zero).contains("--hidden ''"), "{}", text(&zero));
    let share = fedcare(&["simulate", "--test-fraction", "1"], dir.path());
    assert!(!share.status.success() && text(&share).contains("between 0 and 1"), "{}", text(&share));
    let rule = fedcare(&["simulate", "--rule", "fedsgd"], dir.path());
    assert!(!rule.status.success());
    let rules = text(&rule);
    assert!(rules.contains("fedavg") && rules.contains("fedprox") && rules.contains("fedadam"), "{rules}");
}

#[test]
fn a_hospital_makes_its_own_key_and_the_ca_signs_its_request() {
    let dir = tempfile::tempdir().unwrap();
    let ca = fedcare(&["certs", "--out", "ca"], dir.path());
    assert!(ca.status.success(), "{}", text(&ca));
    assert!(!dir.path().join("ca/st-marys.key").exists(), "the CA holds no hospital key");
    let keygen = fedcare(&["keygen", "--name", "st-marys", "--out", "hospital"], dir.path());
    assert!(keygen.status.success(), "{}", text(&keygen));
    let line = text(&keygen).lines().find(|l| l.starts_with("st-marys = \"sha256:")).unwrap().to_owned();
    let sign = fedcare(&["sign", "--ca", "ca", "--request", "hospital/st-marys.csr"], dir.path());
    assert!(sign.status.success(), "{}", text(&sign));
    assert!(text(&sign).contains(&line), "the CA sees the fingerprint the hospital made:\n{}", text(&sign));
    assert!(dir.path().join("hospital/st-marys.pem").exists());
    let again = fedcare(&["keygen", "--name", "st-marys", "--out", "hospital"], dir.path());
    assert!(!again.status.success() && text(&again).contains("exists already"), "{}", text(&again));
}

#[test]
fn certs_never_overwrite_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let first = fedcare(&["certs", "--out", "pki", "--hospitals", "st-marys,general"], dir.path());
    assert!(first.status.success(), "{}", text(&first));
    let key = std::fs::read(dir.path().join("pki/ca.key")).unwrap();
    let again = fedcare(&["certs", "--out", "pki", "--hospitals", "st-marys,general"], dir.path());
    assert!(!again.status.success());
    assert!(text(&again).contains("exists already"), "{}", text(&again));
    assert_eq!(std::fs::read(dir.path().join("pki/ca.key")).unwrap(), key);
}

#[test]
fn one_file_split_by_patient_trains_a_federation_that_predicts_its_held_out_patients() {
    let dir = tempfile::tempdir().unwrap();
    let synth = fedcare(&["synth", "--hospitals", "1", "--patients", "1500", "--out", "one"], dir.path());
    assert!(synth.status.success(), "{}", text(&synth));
    let split = fedcare(
        &["split", "--data", "one/hospital-01.csv", "--sites", "3", "--holdout", "0.25", "--out", "split"],
        dir.path(),
    );
    assert!(split.status.success(), "{}", text(&split));
    let table = String::from_utf8_lossy(&split.stdout);
    assert!(table.contains("site-3.csv") && table.contains("holdout.csv"), "{table}");
    // The sites hash their top_k columns under a consortium key.
    let key = fedcare(&["top-k-key", "--out", "top_k.key"], dir.path());
    assert!(key.status.success(), "{}", text(&key));
    let fingerprint = text(&key).lines().find_map(|l| l.strip_prefix("top_k_key_fingerprint = ")).unwrap().to_owned();
    let again = fedcare(&["top-k-key", "--out", "top_k.key"], dir.path());
    assert!(!again.status.success() && text(&again).contains("exists already"), "{}", text(&again));
    let simulate = fedcare(
        &[
            "simulate",
            "--data",
            "split/sites",
            "--top-k-key",
            "top_k.key",
            "--rounds",
            "2",
            "--hidden",
            "",
            "--out",
            "sim",
        ],
        dir.path(),
    );
    assert!(simulate.status.success(), "{}", text(&simulate));
    let inspect = fedcare(&["inspect", "sim/model.bin"], dir.path());
    assert!(text(&inspect).contains(&format!("+top_k-key:{}", fingerprint.trim_matches('"'))), "{}", text(&inspect));
    let scoring = ["predict", "--model", "sim/model.bin", "--data", "split/holdout.csv", "--out", "scores.csv"];
    let unkeyed = fedcare(&scoring, dir.path());
    assert!(!unkeyed.status.success() && text(&unkeyed).contains("give that key"), "{}", text(&unkeyed));
    let predict = fedcare(&[&scoring[..], &["--top-k-key", "top_k.key"]].concat(), dir.path());
    assert!(predict.status.success(), "{}", text(&predict));
    let said = String::from_utf8_lossy(&predict.stdout);
    assert!(said.contains("AUROC 0.") && said.contains("expected calibration error"), "{said}");
    // A patient is in one file only.
    let patients = |path: &str| -> std::collections::BTreeSet<String> {
        let text = std::fs::read_to_string(dir.path().join(path)).unwrap();
        text.lines().skip(1).map(|l| l.split(',').nth(1).unwrap().to_string()).collect()
    };
    let held_out = patients("split/holdout.csv");
    for site in ["split/sites/site-1.csv", "split/sites/site-2.csv", "split/sites/site-3.csv"] {
        assert!(patients(site).is_disjoint(&held_out), "{site} shares patients with the held-out file");
    }
}
