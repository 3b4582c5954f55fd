use clap::Subcommand;
use rmmbridge_core::Role;
use rmmbridge_server::auth::password::generate_password;
use rmmbridge_server::config::Settings;
use rmmbridge_server::services::audit::Actor;
use rmmbridge_server::services::users;
use rmmbridge_server::startup::open_database;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user. Prints a generated password once unless --password-stdin is given.
    Add {
        username: String,
        /// admin, technician or viewer.
        #[arg(long, default_value = "viewer")]
        role: Role,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Set a new password (generated and printed once, or read from stdin) and end the user's sessions.
    ResetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        Ok((super::read_stdin_line()?, false))
    } else {
        Ok((generate_password(), true))
    }
}

pub async fn run(settings: Settings, cmd: UserCommand) -> anyhow::Result<()> {
    let db = open_database(&settings).await?;
    match cmd {
        UserCommand::Add {
            username,
            role,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            let user = users::create_user(&db, &Actor::cli(), &username, role, &password).await?;
            println!("created user {} ({})", user.username, user.role);
            if generated {
                println!("password: {password}");
                println!("(shown only now)");
            }
        }
        UserCommand::List => {
            println!(
                "{:<6} {:<32} {:<11} {:<8} tenants",
                "id", "username", "role", "status"
            );
            for u in db.list_users().await? {
                let tenants = db.user_tenants(u.id).await?;
                let tenants = if tenants.is_empty() {
                    "all".to_string()
                } else {
                    tenants
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let status = if u.disabled { "disabled" } else { "active" };
                println!(
                    "{:<6} {:<32} {:<11} {:<8} {}",
                    u.id, u.username, u.role, status, tenants
                );
            }
        }
        UserCommand::ResetPassword {
            username,
            password_stdin,
        } => {
            let user = users::find(&db, &username).await?;
            let (password, generated) = password(password_stdin)?;
            users::reset_password(&db, &Actor::cli(), &user, &password).await?;
            println!(
                "password of {} reset; their sessions were ended",
                user.username
            );
            if generated {
                println!("password: {password}");
                println!("(shown only now)");
            }
        }
    }
    Ok(())
}
