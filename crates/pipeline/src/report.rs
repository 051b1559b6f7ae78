//! Validation reports: every problem of a document at once, each with where it is.

use std::fmt;

/// What kind of problem an [`Issue`] is, for callers that act on it (and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IssueKind {
    /// The text is not YAML or JSON, or is empty.
    Syntax,
    /// `apiVersion` or `kind` is not what this reader understands.
    WrongVersion,
    /// A required key is missing.
    MissingKey,
    /// A key the format does not have.
    UnknownKey,
    /// A value of the wrong type (a list where a string belongs) or out of range.
    BadValue,
    /// A task `type` not among the registered ones.
    UnknownTaskType,
    /// Two tasks, or two inputs or outputs of one task, share a name.
    Duplicate,
    /// The dependencies (declared or implied by data) form a cycle.
    Cycle,
    /// A dependency names a task the document does not have.
    MissingTask,
    /// An input or reference names a task output that does not exist.
    DanglingInput,
    /// A resource quantity that does not parse.
    BadQuantity,
    /// A reference to a parameter the document does not declare.
    UnknownParameter,
    /// A malformed `{{ … }}` reference.
    BadReference,
    /// A `when` that is not one of the accepted forms.
    BadCondition,
}

/// One problem: where it is, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// What kind of problem it is.
    pub kind: IssueKind,
    /// Where in the document, as a path: `spec.tasks[3].inputs[0].source`.
    pub path: String,
    /// The 1-based line in the source text; 0 when unknown (a JSON text with tabs, or the
    /// document as a whole).
    pub line: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a document, in the order of the document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The problems, sorted by line (problems of the whole document first).
    pub issues: Vec<Issue>,
}

impl Report {
    /// Whether no problem was found.
    pub fn is_empty(&self) -> bool {
        self.issues.is_empty()
    }

    /// The problems of one kind.
    pub fn of_kind(&self, kind: IssueKind) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(move |i| i.kind == kind)
    }

    pub(crate) fn push(
        &mut self,
        kind: IssueKind,
        path: impl Into<String>,
        line: usize,
        message: impl Into<String>,
    ) {
        self.issues.push(Issue {
            kind,
            path: path.into(),
            line,
            message: message.into(),
        });
    }

    pub(crate) fn sort(&mut self) {
        self.issues.sort_by_key(|i| i.line);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "the pipeline document has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}
