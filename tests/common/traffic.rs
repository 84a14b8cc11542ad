//! Steady webhook traffic for tests that change plugins under load (hot reload,
//! deploy, a fleet's deploy): one thread posting to the given URLs in turn until
//! stopped, recording every answer. A request that fails at the transport level
//! (no answer at all) fails the test when the traffic is stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub struct SteadyTraffic {
    stop: Arc<AtomicBool>,
    /// `(status, body)` of every answer, in order.
    answers: Arc<Mutex<Vec<(u16, String)>>>,
    thread: JoinHandle<()>,
}

impl SteadyTraffic {
    pub fn start(urls: Vec<String>) -> SteadyTraffic {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, answers) = (stop.clone(), answers.clone());
            std::thread::spawn(move || {
                let client = super::client();
                for url in urls.iter().cycle() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let response = client
                        .post(url)
                        .body("{}")
                        .send()
                        .unwrap_or_else(|e| panic!("no answer from {url}: {e}"));
                    let status = response.status().as_u16();
                    let body = response.text().unwrap();
                    answers.lock().unwrap().push((status, body));
                }
            })
        };
        SteadyTraffic {
            stop,
            answers,
            thread,
        }
    }

    /// How many answers came so far.
    pub fn count(&self) -> usize {
        self.answers.lock().unwrap().len()
    }

    /// Whether an answer after the first `since` had this body.
    pub fn answered_since(&self, since: usize, body: &str) -> bool {
        self.answers.lock().unwrap()[since..]
            .iter()
            .any(|(_, answer)| answer == body)
    }

    /// Stops the traffic and asserts that every request was answered with a 2xx;
    /// returns the answers.
    pub fn stop_all_succeeded(self) -> Vec<(u16, String)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the traffic thread failed");
        let answers = std::mem::take(&mut *self.answers.lock().unwrap());
        let failures: Vec<_> = answers
            .iter()
            .filter(|(status, _)| !(200..300).contains(status))
            .collect();
        assert!(
            failures.is_empty(),
            "{} of {} requests failed: {failures:?}",
            failures.len(),
            answers.len()
        );
        answers
    }
}
