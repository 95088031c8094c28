//! Which of the engine's containers are an agent's: its own, the one whose
//! generation label the record names, and the others (an update in progress
//! makes one beside it; an interruption may leave one). Never told apart by name.

use uuid::Uuid;

use super::Agents;
use crate::container::Found;
use crate::engine::PodmanError;

impl Agents {
    /// The agent's own container, as the engine lists it now.
    pub(super) async fn current(&self, id: Uuid) -> Result<Option<Found>, PodmanError> {
        let generation = self.state(id).ok().and_then(|s| s.record.generation);
        let all = self.containers().all_of(id).await?;
        Ok(pick_current(all, generation.as_deref()).0)
    }
}

/// Of the agent's containers, its own (the one of `generation`; `None`: the one
/// without the label, made by an older version) and the others. Of several
/// containers of an older version, the running one is taken.
pub(super) fn pick_current(
    all: Vec<Found>,
    generation: Option<&str>,
) -> (Option<Found>, Vec<Found>) {
    let (mut mine, others): (Vec<Found>, Vec<Found>) = all
        .into_iter()
        .partition(|f| f.generation.as_deref() == generation);
    mine.sort_by_key(|f| f.state != crate::container::Container::Running);
    let mut mine = mine.into_iter();
    let current = mine.next();
    (current, mine.chain(others).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{Container, ContainerId};

    fn found(id: &str, name: &str, generation: Option<&str>, state: Container) -> Found {
        Found {
            id: ContainerId(id.into()),
            agent: None,
            name: name.into(),
            state,
            image_id: "img".into(),
            generation: generation.map(str::to_string),
        }
    }

    #[test]
    fn the_agent_s_own_container_is_the_record_s_generation_whatever_the_names() {
        // An agent named `x-previous` beside one named `x`: names say nothing.
        let all = vec![
            found(
                "a",
                "clawdock-x-previous",
                Some("g1"),
                Container::Exited(Some(0)),
            ),
            found("b", "clawdock_x_g2", Some("g2"), Container::Running),
        ];
        let (current, others) = pick_current(all.clone(), Some("g1"));
        assert_eq!(current.map(|f| f.id.0), Some("a".into()));
        assert_eq!(others.len(), 1);
        let (current, _) = pick_current(all.clone(), Some("g2"));
        assert_eq!(current.map(|f| f.id.0), Some("b".into()));
        let (current, others) = pick_current(all, Some("g3"));
        assert!(current.is_none(), "no container of the record's generation");
        assert_eq!(others.len(), 2);
    }

    #[test]
    fn containers_of_an_older_version_are_the_ones_without_the_label() {
        let all = vec![
            found("new", "clawdock_x_g2", Some("g2"), Container::Running),
            found("old1", "clawdock-x", None, Container::Exited(Some(0))),
            found("old2", "clawdock-x-previous", None, Container::Running),
        ];
        let (current, others) = pick_current(all, None);
        assert_eq!(
            current.map(|f| f.id.0),
            Some("old2".into()),
            "the running one"
        );
        assert_eq!(others.len(), 2);
    }
}
