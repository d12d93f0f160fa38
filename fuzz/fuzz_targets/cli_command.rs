//! The CLI's verbs that end by themselves, from filemap-cli's sources.

#[path = "../../filemap-cli/src/command/info.rs"]
pub mod info;
#[path = "../../filemap-cli/src/command/input.rs"]
pub mod input;
#[path = "../../filemap-cli/src/command/ls.rs"]
pub mod ls;
#[path = "../../filemap-cli/src/command/output.rs"]
pub mod output;
#[path = "../../filemap-cli/src/command/read.rs"]
pub mod read;
#[path = "../../filemap-cli/src/command/rm.rs"]
pub mod rm;
#[path = "../../filemap-cli/src/command/write.rs"]
pub mod write;
