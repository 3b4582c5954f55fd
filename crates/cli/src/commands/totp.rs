use clap::Args;

#[derive(Args)]
pub struct TotpArgs {
    /// The Base32 MFA secret (as shown beside the QR code). Reads RMMBRIDGE_TOTP_SECRET when left out.
    #[arg(env = "RMMBRIDGE_TOTP_SECRET", hide_env_values = true)]
    secret: String,
}

pub fn run(args: TotpArgs) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let code = rmmbridge_core::totp::current_code(&args.secret, now)?;
    println!("{}", code.code);
    eprintln!("valid for {} more seconds", code.valid_for_secs);
    Ok(())
}
