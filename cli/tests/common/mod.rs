//! What the CLI tests share: one run of a binary, and what it printed.
#![allow(dead_code)]

/// What one run did.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Out {
    fn from(out: std::process::Output) -> Out {
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Out {
    /// Asserts success; the stdout.
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        self.stdout
    }

    /// Asserts exit status 1 and that the error line starts with `prefix`: the stderr's first
    /// line (`first`) or its last (after log lines); the stderr.
    pub fn fails_with(self, prefix: &str, first: bool) -> String {
        assert_eq!(self.code, 1, "expected exit status 1, got {self:#?}");
        let line = if first { self.stderr.lines().next() } else { self.stderr.lines().last() };
        assert!(line.unwrap_or("").starts_with(prefix), "{self:#?}");
        self.stderr
    }
}
