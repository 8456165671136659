//! The loader's command line, built flag by flag: [`Args::new`] points it at an API server
//! (the emulator) with a token file, and the methods add the objects, the namespace, the
//! mode and the output directory, in the order they are called. The loader's flags do not
//! depend on their order; a value flag given twice counts with its last value. This module
//! only builds strings: it starts nothing and checks nothing.

use std::path::{Path, PathBuf};

/// The test cluster CA that the emulator's certificate chains to (tests/tls/ca.pem).
pub fn ca_file() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/ca.pem"))
}

/// A loader command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args(pub Vec<String>);

impl Args {
    /// `-apiserver URL -token-file TOKEN`, and for an https URL `-ca-file` with the test CA.
    pub fn new(url: &str, token_file: &Path) -> Args {
        let args = Args::default()
            .value("-apiserver", url)
            .value("-token-file", &token_file.display().to_string());
        if url.starts_with("https://") {
            args.value("-ca-file", &ca_file().display().to_string())
        } else {
            args
        }
    }

    /// `-configmap NAME` (`NAME` or `NAMESPACE/NAME`).
    pub fn configmap(self, name: &str) -> Args {
        self.value("-configmap", name)
    }

    /// `-configmap NAME` for each of `names`, in order.
    pub fn configmaps(self, names: &[&str]) -> Args {
        names.iter().fold(self, |a, name| a.configmap(name))
    }

    /// `-secret NAME`.
    pub fn secret(self, name: &str) -> Args {
        self.value("-secret", name)
    }

    /// `-namespace NS`.
    pub fn namespace(self, ns: &str) -> Args {
        self.value("-namespace", ns)
    }

    /// `-onetime`.
    pub fn onetime(self) -> Args {
        self.flags(&["-onetime"])
    }

    /// `-watch`, with `-watch-timeout TIMEOUT`.
    pub fn watch(self, timeout: &str) -> Args {
        self.flags(&["-watch"]).value("-watch-timeout", timeout)
    }

    /// `-listen ADDR`.
    pub fn listen(self, addr: &str) -> Args {
        self.value("-listen", addr)
    }

    /// `-output-dir DIR`.
    pub fn output(self, dir: &Path) -> Args {
        self.value("-output-dir", &dir.display().to_string())
    }

    /// `flag value`.
    pub fn value(self, flag: &str, value: &str) -> Args {
        self.flags(&[flag, value])
    }

    /// Any flags, as given.
    pub fn flags(mut self, flags: &[&str]) -> Args {
        self.0.extend(flags.iter().map(|f| f.to_string()));
        self
    }

    /// The value of `flag` set to `value`: replaced where the flag is already given, else
    /// added.
    pub fn set(mut self, flag: &str, value: &str) -> Args {
        match self.0.iter().position(|a| a == flag) {
            Some(i) if i + 1 < self.0.len() => {
                self.0[i + 1] = value.to_string();
                self
            }
            _ => self.value(flag, value),
        }
    }
}

impl<'a> IntoIterator for &'a Args {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
