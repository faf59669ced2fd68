//! An MQTT 5 subscriber for the tests that look at what only MQTT 5 carries: the properties of
//! each message, and shared subscriptions (`$share/{group}/{filter}`), where the broker hands
//! each message to one member of the group.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{Client, Event, MqttOptions};

use super::{Message, free_port, wait_for};

/// A message as an MQTT 5 subscriber received it, with its properties.
#[derive(Debug, Clone)]
pub struct Message5 {
    pub message: Message,
    pub content_type: Option<String>,
    pub correlation_data: Option<Vec<u8>>,
    pub user_properties: Vec<(String, String)>,
}

impl Message5 {
    /// The value of user property `name`, if set.
    pub fn user_property(&self, name: &str) -> Option<&str> {
        self.user_properties.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Subscribes to `filter` over MQTT 5 and keeps every message, in arrival order.
pub struct Subscriber5 {
    messages: Arc<Mutex<Vec<Message5>>>,
    client: Client,
}

impl Subscriber5 {
    pub fn connect(port: u16, filter: &str) -> Subscriber5 {
        let mut options = MqttOptions::new(format!("test5-{}", free_port()), "127.0.0.1", port);
        options.set_max_packet_size(Some(16 << 20));
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(options, 100);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let (subscribed_tx, subscribed) = mpsc::channel();
        let (sink, resubscribe, filter) = (messages.clone(), client.clone(), filter.to_string());
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = resubscribe.try_subscribe(&filter, QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let properties = p.properties.unwrap_or_default();
                        sink.lock().unwrap().push(Message5 {
                            message: Message {
                                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                                payload: p.payload.to_vec(),
                                retain: p.retain,
                            },
                            content_type: properties.content_type,
                            correlation_data: properties.correlation_data.map(|d| d.to_vec()),
                            user_properties: properties.user_properties,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        subscribed.recv_timeout(Duration::from_secs(10)).expect("subscribed");
        Subscriber5 { messages, client }
    }

    pub fn messages(&self) -> Vec<Message5> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the messages so far; returns them either way.
    pub fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[Message5]) -> bool,
    ) -> Vec<Message5> {
        wait_for(timeout, || self.messages(), done)
    }
}

impl Drop for Subscriber5 {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}
