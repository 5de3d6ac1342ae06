//! Writing a plan to disk: folders, file bytes, links, then times (folders last, deepest first,
//! so creating their entries does not move them).

use std::ffi::OsStr;
use std::fs::{self, File, FileTimes};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::model::{self, MIB};
use crate::plan::{Content, Plan, SAMPLED_ABOVE};
use crate::rng::{Rng, mix64};

/// The bytes generated files are cut from: one pool of random bytes, one of text lines.
pub(crate) struct Pools {
    binary: Vec<u8>,
    text: Vec<u8>,
}

impl Pools {
    pub(crate) fn new(seed: u64, tiny: bool) -> Pools {
        let mut rng = Rng::new(seed, 2);
        // Tiny files are text of at most 256 bytes: a small text pool does, and no binary one.
        let (bin_len, text_len) = if tiny {
            (0, 64 * 1024)
        } else {
            (16 * MIB, 4 * MIB)
        };
        let mut binary = Vec::with_capacity(bin_len as usize);
        while (binary.len() as u64) < bin_len {
            binary.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        let vocabulary: Vec<&str> = model::WORDS
            .iter()
            .chain(model::UNI_WORDS)
            .chain(&[
                "fn", "let", "mut", "impl", "pub", "struct", "use", "{", "}", "=", "->", "//",
                "the", "and", "of", "to", "in",
            ])
            .copied()
            .collect();
        let mut text = Vec::with_capacity(text_len as usize + 256);
        while (text.len() as u64) < text_len {
            let words = rng.between(1, 14);
            for w in 0..words {
                if w > 0 {
                    text.push(b' ');
                }
                text.extend_from_slice(rng.pick(&vocabulary).as_bytes());
            }
            text.push(b'\n');
        }
        text.truncate(text_len as usize);
        Pools { binary, text }
    }
}

/// Where near-duplicates differ: for sampled sizes, between the first and the second 10 KiB
/// sample of the content identity (a 8 KiB head, then samples at 8192 + i·(size − 16384)/4), so
/// the sampled hash cannot tell them apart; in the middle otherwise.
pub(crate) fn stamp_offset(size: u64) -> u64 {
    if size > SAMPLED_ABOVE {
        let step = (size - 16_384) / 4;
        8192 + 10_240 + (step - 10_240) / 2
    } else {
        size / 2
    }
}

/// Writes one generated file's bytes: a header naming its content id (after magic bytes for a
/// binary type), then 1 MiB chunks of a pool at offsets the id picks, then the stamp.
fn fill(
    file: &mut File,
    ext: &str,
    size: u64,
    content: Content,
    seed: u64,
    pools: &Pools,
    tiny: bool,
) -> io::Result<()> {
    let (id, stamp) = match content {
        Content::Gitignore => return file.write_all(model::GITIGNORE),
        Content::Generated { id, stamp } => (id, stamp),
    };
    if size == 0 {
        return Ok(());
    }
    let text = tiny || model::is_text(ext);
    let pool = if text { &pools.text } else { &pools.binary };
    let mut head = if text {
        format!("// id {id} seed {seed}\n").into_bytes()
    } else {
        [
            model::magic(ext),
            format!("\0id={id};seed={seed}\0").as_bytes(),
        ]
        .concat()
    };
    head.truncate(size as usize);
    let mut out = io::BufWriter::with_capacity(256 * 1024, &mut *file);
    out.write_all(&head)?;
    let mut remain = size - head.len() as u64;
    let mut chunk = 0u64;
    while remain > 0 {
        let take = remain.min(MIB).min(pool.len() as u64) as usize;
        let key =
            id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ chunk.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        let off = (mix64(key) % (pool.len() - take + 1) as u64) as usize;
        out.write_all(&pool[off..off + take])?;
        remain -= take as u64;
        chunk += 1;
    }
    out.flush()?;
    drop(out);
    if stamp > 0 {
        let off = stamp_offset(size);
        let mark = format!("<<stamp {stamp:08}>>");
        let n = (size - off).min(mark.len() as u64) as usize;
        file.write_all_at(&mark.as_bytes()[..n], off)?;
    }
    Ok(())
}

fn at(secs: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
}

fn times(secs: i64) -> FileTimes {
    FileTimes::new()
        .set_modified(at(secs))
        .set_accessed(at(secs))
}

/// A symbolic link's own times (std sets times only through links, never on them).
fn set_link_times(path: &Path, secs: i64) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let both = [t, t];
    // SAFETY: `c` is a NUL-terminated path that outlives the call, and `both` is the two-element
    // array utimensat reads; AT_SYMLINK_NOFOLLOW makes it change the link itself.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            both.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// FNV-1a: a link's time from its name, so it does not depend on drawing order.
fn name_hash(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn with_path(e: io::Error, what: &str, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
}

pub(crate) fn write(plan: &Plan, root: &Path, seed: u64, tiny: bool) -> io::Result<()> {
    let dir_path = |i: usize| -> PathBuf {
        let rel = &plan.dirs[i].rel;
        if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        }
    };
    for i in 0..plan.dirs.len() {
        let p = dir_path(i);
        fs::create_dir(&p).map_err(|e| with_path(e, "creating folder", &p))?;
    }
    let pools = Pools::new(seed, tiny);
    for f in &plan.files {
        let p = dir_path(f.dir).join(&f.name);
        let mut file = File::create_new(&p).map_err(|e| with_path(e, "creating", &p))?;
        fill(&mut file, f.ext, f.size, f.content, seed, &pools, tiny)
            .and_then(|()| file.set_times(times(f.mtime)))
            .map_err(|e| with_path(e, "writing", &p))?;
    }
    for h in &plan.hard_links {
        let f = &plan.files[h.file];
        let (from, to) = (dir_path(f.dir).join(&f.name), dir_path(h.dir).join(&h.name));
        fs::hard_link(&from, &to).map_err(|e| with_path(e, "linking", &to))?;
    }
    for s in &plan.symlinks {
        let p = dir_path(s.dir).join(&s.name);
        std::os::unix::fs::symlink(&s.target, &p).map_err(|e| with_path(e, "linking", &p))?;
        let span = (model::MTIME_HI - model::MTIME_LO) as u64;
        let t = model::MTIME_LO + (name_hash(s.name.as_bytes()) % span) as i64;
        set_link_times(&p, t).map_err(|e| with_path(e, "setting times of", &p))?;
    }
    for r in &plan.non_utf8 {
        let p = dir_path(r.dir).join(OsStr::from_bytes(&r.name));
        let mut file = File::create_new(&p).map_err(|e| with_path(e, "creating", &p))?;
        file.write_all(&r.body)
            .and_then(|()| file.set_times(times(r.mtime)))
            .map_err(|e| with_path(e, "writing", &p))?;
    }
    let mut order: Vec<usize> = (0..plan.dirs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(plan.dirs[i].depth));
    for i in order {
        let p = dir_path(i);
        let t = model::MTIME_LO
            + (mix64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                % (model::MTIME_HI - model::MTIME_LO) as u64) as i64;
        File::open(&p)
            .and_then(|d| d.set_times(times(t)))
            .map_err(|e| with_path(e, "setting times of", &p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_lies_between_samples() {
        for size in [SAMPLED_ABOVE + 1, 200_000, 1_048_576, 50 * MIB] {
            let off = stamp_offset(size);
            let step = (size - 16_384) / 4;
            assert!(off >= 8192 + 10_240, "{size}");
            assert!(off + 18 <= 8192 + step, "{size}");
        }
        assert_eq!(stamp_offset(50_000), 25_000);
    }
}
