use rmmbridge_server::config::{LogFormat, Settings};
use tracing_subscriber::EnvFilter;

/// Logs go to stderr so stdout stays for a command's own output.
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|e| {
        eprintln!(
            "warning: log filter {:?} is invalid ({e}); using `info`",
            settings.log_filter
        );
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
