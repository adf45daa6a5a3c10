//! The main job's command line: bad values are refused before training starts,
//! naming the option, with no panic and no file touched.

use std::process::Command;

mod common;
use common::example;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(example("train"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run train");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn invalid_flags_are_refused_naming_the_option() {
    let dir = common::Scratch::new("cli");
    let d = dir.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--batch", "0"], "`batch`"),
        (&["--steps", "0"], "`steps`"),
        (&["--min-len", "12", "--max-len", "5"], "`max_len`"),
        (&["--max-len", "100000"], "`max_len`"),
        (&["--lr=-0.1"], "`optimizer.lr`"),
        (&["--log-z-lr", "0"], "`optimizer.log_z_lr`"),
        (&["--epsilon", "1.5"], "`exploration.epsilon`"),
        (&["--temperature", "0"], "`exploration.temperature`"),
        (&["--objective", "subtb", "--lambda", "0"], "`objective.lambda`"),
        (&["--g", "linex:0"], "`objective.g`"),
        (&["--objective", "tbx"], "unknown objective `tbx`"),
        (&["--g", "huber"], "huber"),
        (&["--replay", "sometimes"], "`replay`"),
        (&["--objective", "rev-kl", "--replay", "prioritized"], "`replay.kind`"),
        (&["--reward-exponent=-1"], "`reward.exponent`"),
        (&["--log-z-init", "sometimes"], "`log-z-init`"),
        (&["--clip-norm=-1"], "`optimizer.clip_norm`"),
        (&["--residual-clip", "0"], "`objective.clip`"),
        (&["--g", "cosh", "--residual-clip", "100"], "`objective.clip`"),
    ];
    for (args, expect) in cases {
        let mut all = args.to_vec();
        all.extend(["--out", d]);
        let (ok, stderr) = run(&all);
        assert!(!ok, "{args:?} was accepted");
        assert!(stderr.contains(expect), "{args:?}: expected {expect} in: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            !dir.exists(),
            "{args:?}: the run directory was created before validation"
        );
    }
    // a config file with an unknown field and one with a wrong type
    let cfg = common::Scratch::new("cli-cfg.json");
    let good = Command::new(example("train")).arg("--print-config").output().unwrap();
    let text = String::from_utf8(good.stdout).unwrap();
    std::fs::write(&cfg, text.replacen("\"seed\"", "\"sead\"", 1)).unwrap();
    let (ok, stderr) = run(&["--config", cfg.to_str().unwrap(), "--out", d]);
    assert!(!ok && stderr.contains("sead"), "{stderr}");
    std::fs::write(&cfg, text.replacen("\"batch\": 64", "\"batch\": -64", 1)).unwrap();
    let (ok, stderr) = run(&["--config", cfg.to_str().unwrap(), "--out", d]);
    assert!(!ok && stderr.contains("batch"), "{stderr}");
    assert!(!dir.exists());
}

/// The configuration `train --print-config <args>` prints.
fn config(args: &[&str]) -> serde_json::Value {
    let out = Command::new(example("train"))
        .arg("--print-config")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn log_z_init_and_clip_norm_flags_reach_the_config() {
    let default = config(&[]);
    assert_eq!(default["optimizer"]["log_z_init"], "batch_estimate");
    assert_eq!(default["optimizer"]["clip_norm"], 10.0);
    let set = config(&["--log-z-init", "config", "--clip-norm", "0"]);
    assert_eq!(set["optimizer"]["log_z_init"], "config");
    assert!(set["optimizer"]["clip_norm"].is_null());
    assert_eq!(default["objective"]["clip"], 50.0);
    let set = config(&["--g", "squared", "--residual-clip", "1e9"]);
    assert_eq!(set["objective"]["clip"], 1e9);
    let set = config(&["--log-z-init", "batch-estimate", "--clip-norm", "2.5"]);
    assert_eq!(set["optimizer"]["log_z_init"], "batch_estimate");
    assert_eq!(set["optimizer"]["clip_norm"], 2.5);
}

#[test]
fn resume_of_a_missing_run_names_the_file() {
    let (ok, stderr) = run(&["--resume", "/nonexistent/run"]);
    assert!(!ok && stderr.contains("/nonexistent/run/config.json"), "{stderr}");
}

/// Each flag lands in its own field, and the objective flags keep what they
/// do not set: an objective on its own drops the default replay when it is a
/// divergence (an on-policy estimator) and turns on the log F head when it
/// needs one; a config file's residual clip and entropy weight survive.
#[test]
fn flags_reach_their_own_fields_and_keep_the_rest() {
    let c = config(&["--seed", "7", "--eval-every", "13", "--checkpoint-every", "17"]);
    assert_eq!((c["seed"].as_u64(), c["eval"]["every"].as_u64()), (Some(7), Some(13)));
    assert_eq!(c["checkpoint_every"].as_u64(), Some(17));
    for kind in ["none", "uniform", "prioritized"] {
        assert_eq!(config(&["--replay", kind])["replay"]["kind"], kind);
    }
    let c = config(&["--objective", "rev-kl"]);
    assert_eq!(
        (c["objective"]["objective"].as_str(), c["replay"]["kind"].as_str()),
        (Some("rev-kl"), Some("none"))
    );
    let c = config(&["--objective", "db"]);
    assert_eq!(
        (&c["objective"]["objective"], &c["policy"]["log_f"]),
        (&"db".into(), &true.into())
    );
    assert_eq!(c["replay"]["kind"], "prioritized", "a balance objective keeps replay");
    // from a config file: flags for the objective keep its clip and entropy weight
    let mut file = config(&[]);
    file["objective"]["clip"] = 20.0.into();
    file["objective"]["entropy_weight"] = 0.25.into();
    let cfg = common::Scratch::new("cli-keep.json");
    std::fs::write(&cfg, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    let c = config(&[
        "--config",
        cfg.to_str().unwrap(),
        "--objective",
        "subtb",
        "--lambda",
        "0.5",
    ]);
    assert_eq!(c["objective"]["objective"], "subtb:0.5");
    assert_eq!(
        (
            c["objective"]["clip"].as_f64(),
            c["objective"]["entropy_weight"].as_f64()
        ),
        (Some(20.0), Some(0.25))
    );
}

/// A peptide flag on a HyperGrid config and a broken config file are refused
/// naming the flag and the file.
#[test]
fn flags_that_do_not_apply_and_bad_config_files_are_named() {
    let dir = common::Scratch::new("cli-named");
    let d = dir.to_str().unwrap();
    let grid = common::Scratch::new("cli-grid.json");
    std::fs::write(&grid, gflownet::train::TrainConfig::hypergrid_default(2, 4).to_json()).unwrap();
    let (ok, stderr) = run(&["--config", grid.to_str().unwrap(), "--min-len", "3", "--out", d]);
    assert!(!ok && stderr.contains("`min-len`"), "{stderr}");
    std::fs::write(&grid, "{\"seed\": 1,").unwrap();
    let (ok, stderr) = run(&["--config", grid.to_str().unwrap(), "--out", d]);
    assert!(!ok && stderr.contains(grid.to_str().unwrap()), "{stderr}");
    assert!(!dir.exists());
}

/// `--resume` continues a run under its own `config.json`, which its
/// checkpoints are tied to: another flag is refused, not silently ignored.
#[test]
fn resume_takes_no_other_flag() {
    for extra in [&["--steps", "5000"][..], &["--threads", "2"], &["--print-config"]] {
        let mut args = vec!["--resume", "/nonexistent/run"];
        args.extend(extra);
        let (ok, stderr) = run(&args);
        assert!(!ok && stderr.contains("--resume"), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("config.json"),
            "{args:?}: refused before reading the run: {stderr}"
        );
    }
}
