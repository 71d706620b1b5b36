//! hhq from anywhere: the built-in library and demo data when nothing names a directory, a
//! project file (`hhq.toml`, found upward) and `HHQ_*` variables over it, the command line over
//! both, and `hhq config` saying where each setting comes from.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

/// `hhq` in `cwd` with no `HHQ_*` variable but the cache directory given.
fn hhq_in(cwd: &Path, cache: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hhq"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HHQ_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HHQ_CACHE_DIR", cache)
        .envs(env.iter().copied())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("hhq runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn the_main_job_runs_from_any_directory_on_the_built_in_library_and_demo_data() {
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, cache) = (tmp.path().join("elsewhere"), tmp.path().join("cache"));
    std::fs::create_dir_all(&cwd).unwrap();
    let o = hhq_in(
        &cwd,
        &cache,
        &[],
        &["report", "state", "--no-pdf", "--out", "report"],
    );
    let (_, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("note: hhq report reads the built-in demo data"),
        "{stderr}"
    );
    let glance = std::fs::read_to_string(cwd.join("report/tables/at_a_glance.csv")).unwrap();
    for id in ["AMB-HH", "FUH-HH", "HH-ENGAGE", "PCR-HH"] {
        assert!(glance.contains(&format!("\n{id},")), "{id}: {glance}");
    }
    // The library was written once, whole, to the cache; the measures in it are the shipped ones.
    // (`runs/` beside it is the run cache.)
    let libraries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "runs")
        .collect();
    assert_eq!(libraries.len(), 1, "{libraries:?}");
    let lib = libraries[0].path();
    assert!(lib.join(".complete").is_file());
    assert_eq!(
        std::fs::read(lib.join("measures/fuh-hh.yaml")).unwrap(),
        std::fs::read(common::root().join("measures/fuh-hh.yaml")).unwrap()
    );

    // The same measure from the repository (its hhq.toml) and from elsewhere: the same figures.
    let root = common::root();
    let summary = |cwd: &Path| {
        let out = tmp.path().join("run");
        let o = hhq_in(
            cwd,
            &cache,
            &[],
            &["run", "--measure", "AMB-HH", "--out", out.to_str().unwrap()],
        );
        assert!(o.status.success(), "{}", text(&o).1);
        std::fs::read(out.join("summary.csv")).unwrap()
    };
    assert_eq!(summary(&cwd), summary(&root));
}

#[test]
fn a_project_file_found_upward_and_hhq_variables_set_the_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let (project, cache) = (tmp.path().join("team"), tmp.path().join("cache"));
    let deep = project.join("analyses/2025");
    std::fs::create_dir_all(&deep).unwrap();
    let data = common::root().join("testdata");
    std::fs::write(
        project.join("hhq.toml"),
        format!(
            "# shared by the team\ndata = {:?}\nprogramme = \"Sunflower Health Homes\"\nstate = \"Kansas\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();

    // Found from a directory below; paths as written (absolute here), sources named.
    let o = hhq_in(&deep, &cache, &[("HHQ_STATE", "KS")], &["config"]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let toml = project.join("hhq.toml");
    assert!(
        stdout.contains(&format!("project file: {}", toml.display())),
        "{stdout}"
    );
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key}: {stdout}"))
            .to_string()
    };
    assert!(
        line("data").contains(&data.display().to_string())
            && line("data").ends_with(&format!("({})", toml.display())),
        "{stdout}"
    );
    assert!(
        line("programme").contains("Sunflower Health Homes"),
        "{stdout}"
    );
    // The variable over the file.
    assert!(
        line("state").contains("KS") && line("state").ends_with("($HHQ_STATE)"),
        "{stdout}"
    );
    // Nothing names the library: the built-in one.
    assert!(line("measures").ends_with("(built in)"), "{stdout}");

    // The programme reaches the report's title; the command line overrides the file.
    let report = |extra: &[&str]| {
        let out = tmp.path().join("r");
        let mut args = vec![
            "report",
            "hhp",
            "HHP-05",
            "--measure",
            "AMB-HH",
            "--no-pdf",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let o = hhq_in(&deep, &cache, &[], &args);
        assert!(o.status.success(), "{}", text(&o).1);
        assert!(!text(&o).1.contains("demo data"), "{}", text(&o).1);
        std::fs::read_to_string(out.join("report.html")).unwrap()
    };
    assert!(report(&[]).contains("Sunflower Health Homes"));
    let given = report(&["--programme", "Prairie Care"]);
    assert!(given.contains("Prairie Care") && !given.contains("Sunflower"));
}

#[test]
fn a_wrong_project_file_is_an_error_at_its_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("hhq.toml"),
        "data = \"d\"\nprogram = \"typo\"\n",
    )
    .unwrap();
    let o = hhq_in(tmp.path(), &tmp.path().join("cache"), &[], &["config"]);
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("hhq.toml:2:1: unknown field `program`") && stderr.contains("programme"),
        "{stderr}"
    );
    // HHQ_PROJECT= (empty) ignores it.
    let o = hhq_in(
        tmp.path(),
        &tmp.path().join("cache"),
        &[("HHQ_PROJECT", "")],
        &["config"],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(text(&o).0.contains("project file: none"), "{}", text(&o).0);
}

#[test]
fn the_built_in_library_can_be_written_out_to_start_one_of_your_own() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let o = hhq_in(tmp.path(), &cache, &[], &["library", "--out", "lib"]);
    assert!(o.status.success(), "{}", text(&o).1);
    let lib = tmp.path().join("lib");
    for rel in [
        "measures/fuh-hh.yaml",
        "queries/ed_visits.sql",
        "mappings/flat-csv.yaml",
    ] {
        assert_eq!(
            std::fs::read(lib.join(rel)).unwrap(),
            std::fs::read(common::root().join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert!(!lib.join("testdata").exists());
    // Again: nothing to write. A file changed since is not overwritten.
    let o = hhq_in(tmp.path(), &cache, &[], &["library", "--out", "lib"]);
    assert!(text(&o).1.contains("wrote 0 files"), "{}", text(&o).1);
    std::fs::write(lib.join("measures/fuh-hh.yaml"), "id: MINE\n").unwrap();
    let o = hhq_in(tmp.path(), &cache, &[], &["library", "--out", "lib"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o).1);
    assert!(
        text(&o).1.contains("fuh-hh.yaml exists and differs"),
        "{}",
        text(&o).1
    );
}

#[test]
fn a_library_of_ones_own_extends_the_built_in_one_when_the_project_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (proj, cache, scratch) = (
        tmp.path().join("proj"),
        tmp.path().join("cache"),
        tmp.path().join("tmp"),
    );
    for d in [proj.join("mine"), proj.join("blocks"), scratch.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    let root = common::root();
    // A measure of one's own beside the built-in ones, reading a block of one's own; and the
    // built-in FUH-HH replaced by a file of its name.
    let amb = std::fs::read_to_string(root.join("measures/amb-hh.yaml")).unwrap();
    assert!(amb.contains("\nid: AMB-HH\n") && amb.contains("count: ed_visits\n"));
    std::fs::write(
        proj.join("mine/amb-mine.yaml"),
        amb.replace("\nid: AMB-HH\n", "\nid: AMB-MINE\n")
            .replace("count: ed_visits\n", "count: my_ed_visits\n"),
    )
    .unwrap();
    std::fs::write(
        proj.join("blocks/my_ed_visits.sql"),
        "-- ED visits, as the built-in block has them\nSELECT * FROM ed_visits\n",
    )
    .unwrap();
    let fuh = std::fs::read_to_string(root.join("measures/fuh-hh.yaml")).unwrap();
    assert!(fuh.contains("  2025: \"2025.1\"\n"));
    std::fs::write(
        proj.join("mine/fuh-hh.yaml"),
        fuh.replace("  2025: \"2025.1\"\n", "  2025: \"2025.1-local\"\n"),
    )
    .unwrap();
    std::fs::write(
        proj.join("hhq.toml"),
        "measures = \"mine\"\nqueries = \"blocks\"\nlibrary = \"extend\"\n",
    )
    .unwrap();
    let env = [("TMPDIR", scratch.to_str().unwrap())];
    let out = tmp.path().join("out");
    let o = hhq_in(
        &proj,
        &cache,
        &env,
        &["run", "--out", out.to_str().unwrap(), "--format", "csv"],
    );
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let measures: std::collections::BTreeSet<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(measures.len(), 12, "{measures:?}");
    assert!(measures.contains("AMB-MINE") && measures.contains("AMB-HH"));
    assert!(stderr.contains("FUH-HH 2025.1-local"), "{stderr}");
    // The same ED visits through the block of one's own.
    let total = |m: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{m},")) && l.contains(",total,total,"))
            .map(|l| l.split(',').skip(2).collect::<Vec<_>>().join(","))
            .unwrap()
    };
    assert_eq!(total("AMB-MINE"), total("AMB-HH"));
    // The manifest names the files as written, not the overlay's links.
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(manifest.contains("mine/amb-mine.yaml"), "{manifest}");
    assert!(!manifest.contains("hhq-library-"), "{manifest}");
    // The overlay is gone when hhq ends.
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);

    // Errors name the file one wrote; a second AMB-HH is told how to replace the built-in one.
    std::fs::write(proj.join("mine/my-amb.yaml"), &amb).unwrap();
    let o = hhq_in(&proj, &cache, &env, &["check"]);
    let (stdout, stderr) = text(&o);
    let said = format!("{stdout}{stderr}");
    assert!(!o.status.success());
    assert!(
        said.contains("mine/my-amb.yaml:1:1: measure id `AMB-HH` is also defined in")
            && said.contains("name your file amb-hh.yaml")
            && stderr.contains("1 problem(s) in mine over the built-in measures"),
        "{said}"
    );
    std::fs::remove_file(proj.join("mine/my-amb.yaml")).unwrap();

    // Without `library = "extend"` the directories are the whole library.
    let o = hhq_in(
        &proj,
        &cache,
        &[("HHQ_LIBRARY", "replace")],
        &["run", "--out", out.to_str().unwrap(), "--format", "csv"],
    );
    let (_, stderr) = text(&o);
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains("ed_visits"), "{stderr}");
    let o = hhq_in(&proj, &cache, &[("HHQ_LIBRARY", "both")], &["config"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o)
            .1
            .contains("HHQ_LIBRARY=both: expected `extend` or `replace`")
    );
}
