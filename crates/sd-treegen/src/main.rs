//! `sd-treegen ROOT [-n FILES] [--seed S] [--profile realistic|tiny]`: writes a deterministic
//! synthetic tree at ROOT and its stats at ROOT.stats.json (printed too).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sd_treegen::{Options, Profile};

/// Writes a deterministic synthetic file tree (see the sd-treegen crate's documentation).
#[derive(Parser)]
#[command(name = "sd-treegen")]
struct Args {
    /// Where to make the tree; must not exist (or pass --force).
    root: PathBuf,
    /// Regular files.
    #[arg(short = 'n', default_value_t = 100_000)]
    files: usize,
    /// One seed, one tree.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = Profile::Realistic)]
    profile: Profile,
    /// Files whose names are not valid UTF-8 (default: FILES / 20000, at least 3).
    #[arg(long)]
    non_utf8: Option<usize>,
    /// Delete ROOT first if it exists.
    #[arg(long)]
    force: bool,
    /// Print the stats only; write nothing.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let options = Options {
        profile: a.profile,
        files: a.files,
        seed: a.seed,
        non_utf8: a.non_utf8,
    };
    let fail = |what: String| {
        eprintln!("sd-treegen: {what}");
        ExitCode::FAILURE
    };
    if a.dry_run {
        let stats = sd_treegen::plan_stats(&a.root, &options);
        println!(
            "{}",
            serde_json::to_string_pretty(&stats).expect("stats JSON")
        );
        return ExitCode::SUCCESS;
    }
    if std::fs::symlink_metadata(&a.root).is_ok() {
        if !a.force {
            return fail(format!("{} exists (use --force)", a.root.display()));
        }
        if let Err(e) = std::fs::remove_dir_all(&a.root) {
            return fail(format!("removing {}: {e}", a.root.display()));
        }
    }
    let started = std::time::Instant::now();
    let stats = match sd_treegen::generate(&a.root, &options) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let json = serde_json::to_string_pretty(&stats).expect("stats JSON");
    let path = sd_treegen::stats_path(&a.root);
    if let Err(e) = std::fs::write(&path, format!("{json}\n")) {
        return fail(format!("writing {}: {e}", path.display()));
    }
    println!("{json}");
    eprintln!(
        "sd-treegen: {} files in {:.1} s",
        stats.regular_files,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
