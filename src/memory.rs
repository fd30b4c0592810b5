//! Going idle: an agent that sits on every server spends nearly all its life waiting, so after a
//! burst of work it hands back what only the work needed — freed heap (`malloc_trim`) and the
//! clean code and constant pages that start-up and the work touched, its executable's and its
//! libraries' alike (`MADV_PAGEOUT`, Linux 5.4+, made for processes that go idle: in the tray
//! that is most of GTK, touched once to start and idle after). Nothing is lost: a page needed
//! again comes back from the page cache on first touch. Elsewhere this does nothing.

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
        let Ok(maps) = std::fs::File::open("/proc/self/maps") else { return };
        for line in std::io::BufReader::new(maps).lines().map_while(Result::ok) {
            // "start-end perms offset dev inode path": only read-only, never-written mappings of
            // files (code and constants of the executable and its libraries), whose pages the
            // file holds; never anonymous memory, the stack or the kernel's [vdso].
            let mut f = line.split_whitespace();
            let (Some(range), Some(perms)) = (f.next(), f.next()) else { continue };
            let path = f.nth(3).unwrap_or("");
            if perms.contains('w') || !perms.ends_with('p') || !path.starts_with('/') {
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
