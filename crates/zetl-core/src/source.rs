//! What every source is given when it starts.

use crate::event::{Checkpoint, CopiedTable};
use crate::model::TableId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Tables waiting to be copied again (`zetl resync`), shared between the HTTP endpoint that
/// takes the requests and the source that serves them.
pub type ResyncRequests = Arc<Mutex<Vec<TableId>>>;

/// What the target knows when the source starts.
pub struct StartState {
    pub checkpoint: Option<Checkpoint>,
    /// Tables whose copy the target has committed and that stream since.
    pub copied: HashMap<TableId, CopiedTable>,
}
