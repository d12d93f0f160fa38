//! Targets without a backend: every call that would touch the OS fails
//! with `Unsupported`, so the crate still type-checks there and users get
//! a clear error at run time.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::io;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::time::Duration;

use super::seam::{Backend, ErrorClass, Host, Map, Mapped, Opened, Request};
use crate::attach::{Liveness, Process};
use crate::error::{Error, Result};
use crate::info::RegionInfo;
use crate::layout::Header;
use crate::lock::LockError;
use crate::notify::Wake;

/// Never constructed: `open` always fails.
pub(crate) enum Os {}

/// Process facts where nothing is known.
pub(crate) enum Unknown {}

/// No mapping is ever made.
impl Map for Infallible {
    fn base(&self) -> NonNull<u8> {
        match *self {}
    }

    fn header(&self) -> &Header {
        match *self {}
    }
}

impl Backend for Os {
    const MAX_NAME_LEN: usize = 247;

    type Host = Unknown;
    type Map = Infallible;

    fn shm_path(name: &str) -> PathBuf {
        PathBuf::from(name)
    }

    fn open(_req: &Request<'_>) -> Result<Opened<Os>> {
        Err(Error::Unsupported)
    }

    fn mapped(&self) -> &Mapped<Infallible> {
        match *self {}
    }

    fn lock(&self, _timeout: Duration) -> std::result::Result<bool, LockError> {
        match *self {}
    }

    fn unlock(&self) -> bool {
        match *self {}
    }

    fn unlock_for(&self, _tid: u32) {
        match *self {}
    }

    fn is_removed(&self) -> bool {
        match *self {}
    }

    fn close(&self) {
        match *self {}
    }

    fn inspect(_name: &str) -> Result<RegionInfo> {
        Err(Error::Unsupported)
    }

    fn list() -> Result<Vec<(String, Result<RegionInfo>)>> {
        Err(Error::Unsupported)
    }

    fn remove(_name: &str) -> Result<()> {
        Err(Error::Unsupported)
    }

    fn clean_stale() -> Result<Vec<String>> {
        Err(Error::Unsupported)
    }

    fn tid() -> u32 {
        0
    }
}

impl Host for Unknown {
    fn fork_epoch() -> u32 {
        0
    }

    fn classify(_e: &io::Error) -> ErrorClass {
        ErrorClass::Other
    }
}

impl Process for Unknown {
    fn pid() -> u32 {
        std::process::id()
    }

    fn own_start_time() -> u64 {
        0
    }

    fn liveness(_pid: u32) -> Liveness {
        Liveness::Unknown
    }
}

impl Wake for Os {
    fn sleep(&self, _h: &Header, _asleep: u32, _token: u64, _prepared: bool, _t: Duration) -> bool {
        match *self {}
    }

    fn wake_all(&self, _h: &Header) {
        match *self {}
    }
}
