//! A test component for another world (`greeter`, exporting `greet`): valid
//! WebAssembly that the host must refuse to load as a plugin, naming what is wrong.

wit_bindgen::generate!({ world: "greeter", path: "wit" });

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello {name}")
    }
}

export!(Greeter);
