//! Serve the token service with the settings of the layered configuration (what `wavecast serve`
//! does, in a screenful). Set at least the caller key and LiveKit credentials, e.g.
//!
//! ```text
//! WAVECAST_SERVICE__AUTH_SECRET=0123456789abcdef0123 WAVECAST_SERVICE__AUTH_ISSUER=https://login.example \
//! WAVECAST_SERVICE__AUTH_AUDIENCE=wavecast WAVECAST_SERVICE__ADMIN_KEY=admin-0123456789abcdef \
//!   cargo run -p wavecast-service --example serve
//! ```

use wavecast_service::{Service, Settings, Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let config = wavecast_config::Loader::new().load()?;
    let settings = Settings::from_config(&config)?;
    let store = Store::connect(&settings.database).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    println!("serving on http://{}", listener.local_addr()?);
    Service::new(settings, store)
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
