//! `pgb completions SHELL` and `pgb man [--dir DIR]`: generated from the clap definitions
//! ([`crate::args::Cli`]) at run time, so they always match the binary's flags.

use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs, ManArgs, ShellArg};
use crate::exit::{FAILURE, Failure};
use crate::render;

pub(super) fn completions(a: &CompletionsArgs) -> Result<(), Failure> {
    use clap_complete::Shell;
    let shell = match a.shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
    };
    let mut cmd = Cli::command();
    render::stdout(|w| {
        clap_complete::generate(shell, &mut cmd, "pgb", w);
        Ok(())
    })
}

pub(super) fn man(a: &ManArgs) -> Result<(), Failure> {
    let cmd = Cli::command();
    let Some(dir) = &a.dir else {
        return render::stdout(|w| clap_mangen::Man::new(cmd).render(w));
    };
    let failed = |e: std::io::Error| {
        Failure::new(
            FAILURE,
            format!("cannot write the man pages into {}: {e}", dir.display()),
        )
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    clap_mangen::generate_to(cmd, dir).map_err(failed)
}
