//! `job`: list, show, follow, pause, resume and cancel durable jobs; following one job's
//! progress for the commands that start jobs.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Result, bail};
use clap::Subcommand;
use indicatif::MultiProgress;
use sd_api::Request;
use sd_core::events::Event;
use sd_core::jobs::{JobInfo, JobState};

use crate::client::Client;
use crate::{output, print_json, print_wire};

#[derive(Subcommand)]
pub enum JobCmd {
    /// Recent jobs, newest first
    List {
        #[arg(long, default_value = "20")]
        limit: usize,
    },
    /// One job's details and result
    Info { id: i64 },
    /// Live progress of running jobs (of one job, if given: then exits when it ends)
    Monitor { id: Option<i64> },
    /// Pause a running job at its next checkpoint
    Pause { id: i64 },
    /// Resume a paused job
    Resume { id: i64 },
    /// Cancel a job; what it already indexed stays
    Cancel { id: i64 },
}

/// Streams job `id` until it ends or is paused, with a progress bar on stderr unless `json`; returns its
/// final state.
pub fn watch_job(client: &Client, lib: Option<String>, id: i64, json: bool) -> Result<JobInfo> {
    let mut last: Option<JobInfo> = None;
    let mut bar = None;
    client.stream(
        &Request::Subscribe {
            library: lib,
            job: Some(id),
        },
        |ev| {
            let Event::Job(job) = ev else {
                return Ok(true); // not about jobs
            };
            if !json {
                let b = bar.get_or_insert_with(|| output::job_bar(&job));
                let knows_total = job.progress.index().is_none_or(|p| p.expected.is_some());
                if b.length().is_none() && knows_total {
                    b.finish_and_clear();
                    *b = output::job_bar(&job);
                }
                output::update_bar(b, &job);
            }
            // A paused job would keep this command waiting until someone resumes it: say so
            // (the caller does) and return.
            let done = job.state.is_final() || job.state == JobState::Paused;
            last = Some(job);
            Ok(!done)
        },
    )?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match last {
        Some(j) if j.state.is_final() || j.state == JobState::Paused => Ok(j),
        _ => bail!(
            "lost track of job {id}: the daemon stopped; it resumes when the daemon starts again"
        ),
    }
}

pub fn run(client: &Client, library: Option<String>, cmd: JobCmd, json: bool) -> Result<()> {
    let one = |j: &JobInfo| -> Result<()> {
        if json {
            return print_json(j);
        }
        println!("{}", output::job_summary(j));
        Ok(())
    };
    match cmd {
        JobCmd::List { limit } => {
            let jobs: Vec<JobInfo> = client.call(&Request::JobList {
                library,
                limit: Some(limit),
            })?;
            if json {
                return print_json(&jobs);
            }
            if jobs.is_empty() {
                println!("no jobs yet");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        output::describe(j),
                        j.state.as_str().to_owned(),
                        output::progress_message(&j.progress),
                        j.resumes.to_string(),
                        output::time_ms(j.created_at),
                    ]
                })
                .collect();
            output::table(
                &["ID", "JOB", "STATE", "PROGRESS", "RESUMES", "CREATED"],
                &rows,
            );
        }
        JobCmd::Info { id } => one(&client.call(&Request::JobInfo { library, id })?)?,
        JobCmd::Pause { id } => one(&client.call(&Request::JobPause { library, id })?)?,
        JobCmd::Resume { id } => one(&client.call(&Request::JobResume { library, id })?)?,
        JobCmd::Cancel { id } => one(&client.call(&Request::JobCancel { library, id })?)?,
        JobCmd::Monitor { id } => monitor(client, library, id, json)?,
    }
    Ok(())
}

fn monitor(client: &Client, library: Option<String>, id: Option<i64>, json: bool) -> Result<()> {
    let multi = MultiProgress::new();
    let mut bars: HashMap<(String, i64), indicatif::ProgressBar> = HashMap::new();
    if !json && id.is_none() {
        eprintln!("watching jobs; Ctrl-C to stop");
    }
    client.stream(&Request::Subscribe { library, job: id }, |ev| {
        if json {
            print_wire(&ev)?;
            std::io::stdout().flush()?;
        }
        let Event::Job(job) = ev else {
            return Ok(true); // not about jobs
        };
        let done = job.state.is_final();
        if !json {
            let key = (job.library_id.to_string(), job.id);
            if done {
                if let Some(b) = bars.remove(&key) {
                    b.finish_and_clear();
                }
                let _ = multi.println(output::job_summary(&job));
            } else {
                let b = bars
                    .entry(key)
                    .or_insert_with(|| multi.add(output::job_bar(&job)));
                output::update_bar(b, &job);
            }
        }
        Ok(!(done && id.is_some()))
    })?;
    for b in bars.values() {
        b.finish_and_clear();
    }
    Ok(())
}
