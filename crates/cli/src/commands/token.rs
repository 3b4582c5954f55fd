use clap::Subcommand;
use rmmbridge_server::config::Settings;
use rmmbridge_server::services::audit::Actor;
use rmmbridge_server::services::{tokens, users};
use rmmbridge_server::startup::open_database;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it once.
    Create {
        /// The user the token acts as (it gets that user's role and tenant limits).
        #[arg(long)]
        user: String,
        /// What the token is for, e.g. "prometheus" or "psa-sync".
        #[arg(long)]
        name: String,
        /// Expire the token after this many days.
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List tokens (never their values).
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by id.
    Revoke { id: i64 },
}

pub async fn run(settings: Settings, cmd: TokenCommand) -> anyhow::Result<()> {
    let db = open_database(&settings).await?;
    match cmd {
        TokenCommand::Create {
            user,
            name,
            expires_days,
        } => {
            let user = users::find(&db, &user).await?;
            anyhow::ensure!(!name.trim().is_empty(), "a token needs a --name");
            let created =
                tokens::create_token(&db, &Actor::cli(), user.id, &name, expires_days).await?;
            println!("{}", created.token);
            eprintln!(
                "token {} for {} created; it is shown only now. Send it as `Authorization: Bearer <token>`.",
                created.record.id, user.username
            );
        }
        TokenCommand::List { user } => {
            let owner = match user {
                Some(name) => Some(users::find(&db, &name).await?.id),
                None => None,
            };
            println!(
                "{:<6} {:<8} {:<12} {:<24} state",
                "id", "user", "prefix", "name"
            );
            for t in db.list_api_tokens(owner).await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<6} {:<8} {:<12} {:<24} {}",
                    t.id, t.user_id, t.prefix, t.name, state
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let token = db
                .list_api_tokens(None)
                .await?
                .into_iter()
                .find(|t| t.id == id)
                .ok_or_else(|| {
                    anyhow::anyhow!("no API token with id {id}; see `rmmbridge token list`")
                })?;
            tokens::revoke_token(&db, &Actor::cli(), &token).await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}
