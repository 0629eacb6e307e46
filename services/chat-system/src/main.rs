//! `chat-system`: parses the command line, then hands over to the composition root
//! (`chat_system::run`).

use std::process::ExitCode;

use chat_system::{cli, telemetry};

fn main() -> ExitCode {
    // Before any TLS client exists: every one of them then uses the same provider.
    chat_core::tls::install_crypto_provider();
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(exit) => return exit,
    };
    let traces = telemetry::init_telemetry(&cli.settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("chat-system: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(chat_system::run(cli));
    if let Some(provider) = traces {
        // Flush the spans still buffered.
        let _ = provider.shutdown();
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "chat-system stopped");
            eprintln!("chat-system: {err}");
            match err {
                chat_core::Error::Config(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
