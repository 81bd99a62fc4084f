//! Fail points: places where the fault suite kills a service on purpose,
//! to show that a crash at the worst moment loses nothing and doubles
//! nothing.
//!
//! They exist only in builds with the `fail-points` feature (the fault
//! suite builds the services so); elsewhere [`fail_point`] is an empty
//! function the compiler removes. In such a build, a point named in the
//! comma-separated `FAIL_POINTS` variable SIGKILLs its own process when
//! reached: no destructor runs, no transaction commits, no answer leaves —
//! exactly what a power cut or the OOM killer would do there.

/// Kills this process with SIGKILL if `name` is listed in `FAIL_POINTS`.
#[cfg(feature = "fail-points")]
pub fn fail_point(name: &str) {
    let armed = std::env::var("FAIL_POINTS").is_ok_and(|points| points.split(',').any(|point| point.trim() == name));
    if armed {
        eprintln!("fail point {name} reached: killing this process");
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
        // Not reached once the signal lands; a sure end if `kill` is missing.
        std::process::abort();
    }
}

/// Does nothing: this build has no fail points.
#[cfg(not(feature = "fail-points"))]
#[inline(always)]
pub fn fail_point(_name: &str) {}
