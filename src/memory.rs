//! Going idle: an agent that sits on every server spends nearly all its life waiting, so after a
//! burst of work it hands back what only the work needed — freed heap (`malloc_trim`) and the
//! clean code pages of its own executable that start-up and the work touched
//! (`MADV_PAGEOUT`, Linux 5.4+, made for processes that go idle). Nothing is lost: a code page
//! needed again comes back from the page cache on first touch. Elsewhere this does nothing.

/// Releases what the last burst of work left resident.
pub fn release_idle() {
    #[cfg(target_os = "linux")]
    linux::release();
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::BufRead;

    pub fn release() {
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free heap memory to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
        let Ok(exe) = std::fs::read_link("/proc/self/exe") else { return };
        let Ok(maps) = std::fs::File::open("/proc/self/maps") else { return };
        for line in std::io::BufReader::new(maps).lines().map_while(Result::ok) {
            // "start-end perms offset dev inode path": only our own read-only, never-written
            // mappings (code and constants), whose pages the file holds.
            let mut f = line.split_whitespace();
            let (Some(range), Some(perms)) = (f.next(), f.next()) else { continue };
            if perms.contains('w') || !line.ends_with(exe.to_string_lossy().as_ref()) {
                continue;
            }
            let Some((start, end)) = range.split_once('-') else { continue };
            let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) else {
                continue;
            };
            // SAFETY: the range is a whole mapping of this process, read-only and file-backed;
            // paging it out changes no content, only residency.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT);
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    fn rss_file_kb() -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines().find_map(|l| l.strip_prefix("RssFile:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap()
    }

    #[test]
    fn going_idle_hands_back_the_code_pages_start_up_touched() {
        let before = rss_file_kb();
        super::release_idle();
        let after = rss_file_kb();
        assert!(after < before, "file-backed resident set {before} kB → {after} kB");
    }
}
