//! `filemap memo`: a terminal notepad shared live between processes.

#[derive(Debug, clap::Args)]
pub struct MemoArgs {
    /// Region name.
    #[arg(default_value = "memo")]
    pub name: String,
}

pub fn run(_args: MemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("memo is not built yet")
}
