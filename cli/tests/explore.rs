//! An exploration deployed as a user would run it: `fedcare serve` with `job = "explore"` and a
//! `fedcare join` per hospital, each its own process, over TCP with mTLS. The aggregator writes
//! the pooled report and page, every hospital its own with its figures beside the pooled ones;
//! a hospital whose file lacks a column refuses with the column's name and the others explore
//! without it.

use core::time::Duration;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use fedcare_federation::exploration::read_report;

fn fedcare(args: &[&str], dir: &Path) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_fedcare")).args(args).current_dir(dir).output().unwrap();
    assert!(output.status.success(), "fedcare {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

fn wait(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_deployed_exploration_reports_at_the_aggregator_and_at_every_hospital() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    fedcare(&["certs", "--out", "pki", "--hospitals", "h1,h2,h3"], work);
    fedcare(&["synth", "--hospitals", "3", "--patients", "600", "--out", "cohort", "--seed", "9"], work);
    let mut files: Vec<_> = std::fs::read_dir(work.join("cohort")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    // h3's file lacks the `race` column.
    fedcare_data::synth::remove_column(&files[2], "race").unwrap();

    std::fs::write(
        work.join("aggregator.toml"),
        r#"
federation_id = "explore-test"
listen = "127.0.0.1:0"
hospitals = ["h1", "h2", "h3"]
min_hospitals = 2
phase_timeout_secs = 60
join_timeout_secs = 5
out_dir = "agg"
schema = "diabetes130"
job = "explore"
[explore]
min_cell = 10
[model]
input_width = 359
hidden = []
[tls]
ca = "pki/ca.pem"
cert = "pki/aggregator.pem"
key = "pki/aggregator.key"
"#,
    )
    .unwrap();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_fedcare"))
        .args(["serve", "--config", "aggregator.toml"])
        .current_dir(work)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(serve.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let port: u16 = first.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{first:?}"));
    let printed = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
        rest
    });
    let members = std::fs::read_to_string(work.join("pki/members.toml")).unwrap();
    let members = members.rsplit("[consortium.members]").next().unwrap();
    let mut joins = Vec::new();
    for (index, name) in ["h1", "h2", "h3"].iter().enumerate() {
        let config = format!(
            "aggregator = \"https://localhost:{port}\"\nserver_name = \"localhost\"\nfederation_id = \"explore-test\"\njob = \"explore\"\n\
             trainer = \"cpu\"\nschema = \"diabetes130\"\nstate_dir = \"{name}/state\"\n[consortium]\nmin_hospitals = 2\n\
             [consortium.members]{members}\n[tls]\nca = \"pki/ca.pem\"\ncert = \"pki/{name}.pem\"\nkey = \"pki/{name}.key\"\n"
        );
        std::fs::write(work.join(format!("{name}.toml")), config).unwrap();
        let join = Command::new(env!("CARGO_BIN_EXE_fedcare"))
            .args(["join", "--config", &format!("{name}.toml"), "--out", &format!("{name}/model.bin"), "--data"])
            .arg(&files[index])
            .current_dir(work)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        joins.push((name, join));
    }
    let mut outputs = Vec::new();
    for (name, mut join) in joins {
        let status = wait(&mut join, Duration::from_secs(120), name);
        let output = join.wait_with_output().unwrap();
        outputs.push((
            name,
            status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    let status = wait(&mut serve, Duration::from_secs(60), "the aggregator");
    let printed = printed.join().unwrap();
    assert!(status.success(), "the aggregator failed:\n{printed}\n{outputs:#?}");
    assert!(printed.contains("exploration: wrote"), "{printed}");

    let (_, h3_status, _, h3_stderr) = &outputs[2];
    assert!(!h3_status.success(), "h3 cannot read its file");
    assert!(h3_stderr.contains("race"), "h3 names the missing column: {h3_stderr}");

    let pooled = read_report(&work.join("agg/explore.json")).unwrap();
    assert!(work.join("agg/explore.html").is_file());
    assert_eq!(pooled.hospitals, ["h1", "h2"]);
    assert!(pooled.local.is_none(), "the aggregator holds no hospital's own figures");
    for (name, status, out, err) in &outputs[..2] {
        assert!(status.success(), "{name}: {err}");
        assert!(out.contains("exploration: wrote"), "{name}: {out}");
        let own = read_report(&work.join(name).join("explore.json")).unwrap();
        assert_eq!(own.figures, pooled.figures, "{name} shows the pooled figures the aggregator shows");
        assert_eq!(own.local.as_ref().unwrap().hospital, **name);
        assert!(work.join(name).join("explore.html").is_file());
    }
    // Both hospitals' own rows add up to the pooled rows.
    let rows = |name: &str| {
        read_report(&work.join(name).join("explore.json")).unwrap().local.unwrap().figures.rows.count().unwrap()
    };
    assert_eq!(rows("h1") + rows("h2"), pooled.figures.rows.count().unwrap());
}
