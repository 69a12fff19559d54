//! `pgb key generate`: a new age identity and, on request, a manifest authentication key.

use pgb::AuthKey;

use crate::args::KeyCommand;
use crate::exit::Failure;
use crate::render;
use pgb_jobs::keys::write_secret_file;

pub(super) fn run(cmd: KeyCommand) -> Result<(), Failure> {
    let KeyCommand::Generate {
        output,
        auth_key_file,
    } = cmd;
    let (identity, recipient) = pgb::generate_identity();
    write_secret_file(&output, &identity)?;
    render::stdout(|w| writeln!(w, "{recipient}"))?;
    render::note(format_args!(
        "wrote the identity (secret) to {}; encrypt with --recipient {recipient}",
        output.display()
    ));
    if let Some(path) = auth_key_file {
        let key = AuthKey::generate().map_err(|e| Failure::key(e.to_string()))?;
        write_secret_file(&path, &format!("{}\n", key.to_hex()))?;
        render::note(format_args!(
            "wrote a manifest authentication key to {}",
            path.display()
        ));
    }
    Ok(())
}
