//! JSON documents (wire types), built from the agent's domain types; one file per family of
//! routes. Domain types never derive `Serialize`: these do.

mod alerts;
mod records;
mod settings;
mod status;
mod work;

pub use alerts::*;
pub use records::*;
pub use settings::*;
pub use status::*;
pub use work::*;
