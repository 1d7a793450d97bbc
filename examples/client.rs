// readme-example: rust
//! The Rust client in a few lines: `cargo run --example client` (a server on localhost:8000).
use futures_util::StreamExt;
use pubsub::client::{Client, Error, Event, Options, Rest, Start};
use pubsub::protocol::ErrorCode;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run("http://localhost:8000").await
}

pub async fn run(url: &str) -> Result<(), Error> {
    // Topics are managed over REST; `topic_exists` means it is there already.
    match Rest::new(url, None)?.create_topic("news").await {
        Ok(_) => {}
        Err(Error::Server(e)) if e.code == ErrorCode::TopicExists => {}
        Err(e) => return Err(e),
    }

    // One connection. It reconnects by itself and resumes each subscription after the last
    // seq it delivered, so `news` yields every seq once, in order, however often it drops.
    let client = Client::connect(url, Options::default()).await?;
    let mut news = client.subscribe("news", Start::Last(5)).await?;
    let ack = news.subscribed();
    println!("subscribed: epoch {}, last seq {}", ack.epoch, ack.last_seq);

    let hello = serde_json::json!({"text": "Hello from Rust"});
    let seq = client.publish("news", &hello).await?;
    while let Some(event) = news.next().await {
        match event {
            Event::Message(m) => {
                println!("#{} {}", m.seq, m.message);
                if m.seq == seq {
                    break; // our own message came back; a real subscriber keeps reading
                }
            }
            // What history no longer held (a gap), the topic recreated or deleted.
            other => println!("{other:?}"),
        }
    }
    client.close().await;
    Ok(())
}
