//! The HTML pages in a real headless browser (Debian's `chromium`): `explore.html` of a federated
//! exploration (the pooled page and a hospital's own), of a `--local` run, and `report.html` of
//! a simulated federation. Each must load without a script error, reference nothing outside
//! itself, show one section per column with its plots, and give a screenshot that is not blank.
//! Without chromium the tests check the files only, say so and pass, unless
//! `FEDCARE_REQUIRE_CHROMIUM` is set (CI sets it); `FEDCARE_SCREENSHOT_DIR` keeps the screenshots.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fedcare_federation::exploration::read_report;

fn fedcare(args: &[&str], dir: &Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_fedcare")).args(args).current_dir(dir).output().unwrap();
    assert!(output.status.success(), "fedcare {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The browser, or `None` (said on stderr) when there is none and none is required.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("FEDCARE_CHROMIUM").map(PathBuf::from).or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .flat_map(|dir| ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("FEDCARE_REQUIRE_CHROMIUM").is_none(),
            "FEDCARE_REQUIRE_CHROMIUM is set but no chromium is on PATH (apt-get install chromium)"
        );
        eprintln!(
            "SKIPPED: no chromium on PATH (apt-get install chromium); the HTML pages were not loaded in a browser"
        );
    }
    found
}

/// What the browser made of a page: its DOM after loading, what it logged, and a screenshot.
struct Loaded {
    dom: String,
    log: String,
    screenshot: Vec<u8>,
}

fn load(browser: &Path, page: &Path, work: &Path) -> Loaded {
    let profile = tempfile::tempdir_in(work).unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let run = |extra: &[String]| {
        let mut command = Command::new(browser);
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
        ]);
        command.arg(format!("--user-data-dir={}", profile.path().display())).args(extra).arg(&url);
        let output = command.output().expect("chromium runs");
        assert!(output.status.success(), "chromium failed on {url}: {}", String::from_utf8_lossy(&output.stderr));
        output
    };
    let dumped = run(&["--dump-dom".to_string()]);
    let shot = work.join(format!("{}.png", page.file_stem().unwrap().to_string_lossy()));
    let shooting = run(&[format!("--screenshot={}", shot.display())]);
    let screenshot = std::fs::read(&shot).expect("a screenshot");
    if let Some(keep) = std::env::var_os("FEDCARE_SCREENSHOT_DIR") {
        let name =
            page.parent().and_then(|p| p.file_name()).map_or("page".into(), |n| n.to_string_lossy().into_owned());
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::write(
            Path::new(&keep).join(format!("{name}-{}.png", page.file_stem().unwrap().to_string_lossy())),
            &screenshot,
        )
        .unwrap();
    }
    let log = String::from_utf8_lossy(&dumped.stderr).into_owned() + &String::from_utf8_lossy(&shooting.stderr);
    Loaded { dom: String::from_utf8_lossy(&dumped.stdout).into_owned(), log, screenshot }
}

/// The page's own problems: script errors the browser logged, anything it would fetch, a blank
/// screenshot.
fn problems(loaded: &Loaded) -> Vec<String> {
    let mut found = Vec::new();
    for line in loaded.log.lines().filter(|l| l.contains(":CONSOLE")) {
        if line.contains("Uncaught") || line.contains("Error") || line.contains("Failed to load") {
            found.push(format!("the browser logged: {line}"));
        }
    }
    let dom = &loaded.dom;
    if dom.contains("<script") {
        found.push("a script".into());
    }
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in dom.match_indices(attribute) {
            let value = &dom[at + attribute.len()..];
            if !(value.starts_with("data:") || value.starts_with('#')) {
                found.push(format!("a reference outside the page: {}", &value[..value.find('"').unwrap_or(0).min(80)]));
            }
        }
    }
    let decoder = png::Decoder::new(std::io::Cursor::new(&loaded.screenshot));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let inked = pixels[..info.buffer_size()].chunks(channels).filter(|p| p.iter().take(3).any(|&c| c < 200)).count();
    let total = (info.width * info.height) as usize;
    if inked * 100 < total {
        found.push(format!("a blank page: {inked} of {total} pixels inked"));
    }
    found
}

fn sections(dom: &str) -> Vec<&str> {
    dom.split("<section class=\"column\"").skip(1).collect()
}

/// Every count the page shows in a table cell: 0 or at least `min_cell`.
fn assert_no_small_count(page: &str, min_cell: u64) {
    for piece in page.split("<td class=\"n\">").skip(1) {
        let number: u64 = piece[..piece.find('<').unwrap()].parse().unwrap();
        assert!(number == 0 || number >= min_cell, "a small count {number} in the page");
    }
}

#[test]
fn the_checks_catch_a_broken_page() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(&page, "<html><body><img src=\"missing.png\"><script>nosuch();</script></body></html>").unwrap();
    let found = problems(&load(&browser, &page, dir.path()));
    assert!(found.iter().any(|p| p.contains("Uncaught")), "{found:?}");
    assert!(found.iter().any(|p| p.contains("missing.png")), "{found:?}");
    assert!(found.iter().any(|p| p.contains("blank")), "{found:?}");
}

#[test]
fn exploration_pages_load_with_a_section_and_plots_per_column() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    fedcare(&["synth", "--hospitals", "3", "--patients", "700", "--out", "cohort", "--seed", "3"], work);
    let federated = fedcare(&["explore", "--data", "cohort", "--out", "fed"], work);
    let stdout = String::from_utf8_lossy(&federated.stdout);
    assert!(stdout.contains("wrote") && stdout.contains("explore.html"), "{stdout}");
    let mut files: Vec<PathBuf> = std::fs::read_dir(work.join("cohort")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let first = files[0].file_stem().unwrap().to_string_lossy().into_owned();
    let local_file = format!("cohort/{first}.csv");
    fedcare(&["explore", "--local", &local_file, "--out", "local"], work);

    // A hospital's own figures in the federation are `--local`'s on its file.
    let own = read_report(&work.join("fed/hospitals").join(&first).join("explore.json")).unwrap();
    let local = read_report(&work.join("local/explore.json")).unwrap();
    assert_eq!(own.local.as_ref().unwrap().figures, local.figures);

    let pooled = read_report(&work.join("fed/explore.json")).unwrap();
    let pages = [
        (work.join("fed/explore.html"), &pooled),
        (work.join("fed/hospitals").join(&first).join("explore.html"), &own),
        (work.join("local/explore.html"), &local),
    ];
    for (page, report) in &pages {
        assert_no_small_count(&std::fs::read_to_string(page).unwrap(), report.min_cell);
    }
    let Some(browser) = chromium() else { return };
    for (page, report) in pages {
        let loaded = load(&browser, &page, work);
        assert_eq!(problems(&loaded), Vec::<String>::new(), "{}", page.display());
        let shown = sections(&loaded.dom);
        assert_eq!(shown.len(), report.figures.columns.len(), "{}: a section per column", page.display());
        for (section, column) in shown.iter().zip(&report.figures.columns) {
            assert!(section.contains(&format!(">{}", column.name)), "{}: section of {}", page.display(), column.name);
            assert!(section.matches("<svg").count() >= 2, "{}: {} has its two plots", page.display(), column.name);
            assert!(section.contains("<rect"), "{}: {} has bars", page.display(), column.name);
        }
        for hospital in &report.hospitals {
            assert!(loaded.dom.contains(hospital.as_str()), "{}: the header names {hospital}", page.display());
        }
    }
}

#[test]
fn the_training_report_page_loads_with_its_four_plots() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    fedcare(&["simulate", "--hospitals", "3", "--rounds", "2", "--rows", "400", "--hidden", "4", "--out", "sim"], work);
    fedcare(&["report", "--metrics", "sim/metrics.jsonl", "--out", "plots"], work);
    let page = work.join("plots/report.html");
    assert!(page.is_file());
    let Some(browser) = chromium() else { return };
    let loaded = load(&browser, &page, work);
    assert_eq!(problems(&loaded), Vec::<String>::new());
    assert_eq!(loaded.dom.matches("src=\"data:image/png;base64,").count(), 4, "the four plots, embedded");
    assert!(loaded.dom.contains("AUROC"));
    assert_eq!(loaded.dom.matches("<tr>").count(), 1 + 4 + 1 + 10, "sessions and calibration tables");
}

/// The subgroup sections of a page.
fn subgroup_sections(dom: &str) -> Vec<&str> {
    dom.split("<section class=\"subgroup\"").skip(1).collect()
}

/// Every subgroup section names its column, has its table and its two plots (a line each for
/// the population and every shown subgroup), and shows no figure of a small subgroup.
fn assert_subgroup_sections(page: &Path, dom: &str, report: &fedcare_core::subgroup::SubgroupReport) {
    let sections = subgroup_sections(dom);
    assert_eq!(sections.len(), report.columns.len(), "{}: a section per subgroup column", page.display());
    for (section, column) in sections.iter().zip(&report.columns) {
        assert!(
            section.contains(&format!("<h3>{}</h3>", column.name)),
            "{}: section of {}",
            page.display(),
            column.name
        );
        assert_eq!(section.matches("<svg").count(), 2, "{}: {} has its two plots", page.display(), column.name);
        assert!(section.matches("<polyline").count() >= 2, "{}: {} has its curves", page.display(), column.name);
        let too_small = column.subgroups.iter().filter(|s| s.figures.shown().is_none()).count();
        assert_eq!(section.matches("too small (under").count(), too_small, "{}: {}", page.display(), column.name);
    }
}

#[test]
fn the_model_card_and_the_evaluation_page_load_with_a_section_per_subgroup_column() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    fedcare(
        &["simulate", "--hospitals", "3", "--rounds", "2", "--rows", "1500", "--hidden", "8", "--out", "sim"],
        work,
    );
    let card = fedcare(&["card", "sim/model.bin"], work);
    assert!(String::from_utf8_lossy(&card.stdout).contains("card.html"));
    fedcare(&["synth", "--hospitals", "2", "--patients", "2000", "--out", "ours", "--seed", "5"], work);
    fedcare(&["evaluate", "--model", "sim/model.bin", "--data", "ours/hospital-01.csv", "--out", "validation"], work);

    let model = fedcare_data::predict::read_model_file(&work.join("sim/model.bin")).unwrap();
    let pooled = model.subgroups.as_ref().expect("the model file carries its subgroups");
    let names: Vec<&str> = pooled.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["race", "gender", "age", "payer_code"]);
    let evaluation: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("validation/evaluate.json")).unwrap()).unwrap();
    let own: fedcare_core::subgroup::SubgroupReport = serde_json::from_value(evaluation["subgroups"].clone()).unwrap();
    assert_eq!(own.columns.len(), 4, "the model file's subgroup columns by default");
    assert!(evaluation["overall"]["auroc"].as_f64().is_some());
    let markdown = std::fs::read_to_string(work.join("sim/card.md")).unwrap();
    assert!(markdown.contains("## Performance per subgroup") && markdown.contains("#### payer_code"), "{markdown}");

    let Some(browser) = chromium() else { return };
    let card_page = work.join("sim/card.html");
    let loaded = load(&browser, &card_page, work);
    assert_eq!(problems(&loaded), Vec::<String>::new(), "{}", card_page.display());
    assert_subgroup_sections(&card_page, &loaded.dom, pooled);
    for heading in ["Intended use and users", "Model and training", "Endorsements", "Limitations"] {
        assert!(loaded.dom.contains(heading), "the card has {heading}");
    }
    assert!(loaded.dom.contains("3 hospitals signed exactly this file"), "the endorsements, checked");

    let evaluate_page = work.join("validation/evaluate.html");
    let loaded = load(&browser, &evaluate_page, work);
    assert_eq!(problems(&loaded), Vec::<String>::new(), "{}", evaluate_page.display());
    // The file's sections, then the federation's.
    let (own_part, federation_part) = loaded.dom.split_once("id=\"federation\"").unwrap();
    assert_subgroup_sections(&evaluate_page, own_part, &own);
    assert_subgroup_sections(&evaluate_page, federation_part, pooled);
}
