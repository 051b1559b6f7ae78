//! On-demand features: columns derived at retrieval time from features of other views, by a
//! small expression language that is parsed and type-checked when the view is applied.
//!
//! ```text
//! mean(array_features:peakPowers)                    statistics of a list feature:
//! band_ratio(array_features:bandSpectrum, 0, 8)        mean std min max argmax energy len
//! (basic_features:meanHf - basic_features:meanLf) / 2  arithmetic on numeric features
//! ```
//!
//! `band_ratio(x, lo, hi)` is the share of `sum(x)` held by `x[lo..hi]` (`hi` excluded).
//! Statistics use the population standard deviation (as numpy's default). A null input, an
//! empty list, a zero sum or a division by zero gives null, never a made-up number.
//!
//! An expression is at most [`MAX_EXPRESSION_BYTES`] long and its tree at most
//! [`MAX_EXPRESSION_DEPTH`] deep. The parser keeps its own stacks instead of recursing;
//! checking, evaluating, printing and dropping a tree do recurse, and the depth bound is what
//! keeps a hostile definition from overflowing the stack of every later command that loads
//! the registry.

use std::fmt;
use std::str::FromStr;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Schema};
use serde::{Deserialize, Serialize};
use trainstore_core::{Error, Result};

use crate::Name;
use crate::definitions::{Definitions, DerivedFeature, FeatureRef, ValueType};

/// The longest expression text accepted.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// The deepest expression tree accepted: every operator of a chain, negation and parenthesis
/// adds a level (`a + b + c` is 3 deep, `-(a)` is 2).
pub const MAX_EXPRESSION_DEPTH: usize = 64;

/// A function of one list feature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ListStat {
    Mean,
    Std,
    Min,
    Max,
    ArgMax,
    Energy,
    Len,
    /// Share of the sum held by items `lo..hi`.
    BandRatio {
        lo: usize,
        hi: usize,
    },
}

/// A binary arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// A parsed expression; its text form is what definitions store.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Feature(FeatureRef),
    Number(f64),
    Neg(Box<Expr>),
    Binary(Box<Expr>, Op, Box<Expr>),
    Stat(ListStat, FeatureRef),
}

// Numbers come from the parser, which never yields NaN, so equality is reflexive.
impl Eq for Expr {}

impl Expr {
    /// Every feature the expression reads, in order of appearance.
    pub fn inputs(&self) -> Vec<&FeatureRef> {
        match self {
            Expr::Feature(r) | Expr::Stat(_, r) => vec![r],
            Expr::Number(_) => Vec::new(),
            Expr::Neg(e) => e.inputs(),
            Expr::Binary(a, _, b) => {
                let mut all = a.inputs();
                all.extend(b.inputs());
                all
            }
        }
    }

    /// The output type (`Int64` for `argmax` and `len`, else `Float64`), after checking each
    /// input's type with `type_of`.
    pub fn check(&self, type_of: &impl Fn(&FeatureRef) -> Result<ValueType>) -> Result<DataType> {
        let bad = |r: &FeatureRef, t: &ValueType, want: &str| {
            Err(Error::invalid(
                "on-demand feature",
                self.to_string(),
                format!("{r} is {t}; {want}"),
            ))
        };
        match self {
            Expr::Feature(r) => {
                let t = type_of(r)?;
                if !t.is_numeric() {
                    return bad(r, &t, "arithmetic needs a numeric feature");
                }
                Ok(DataType::Float64)
            }
            Expr::Stat(stat, r) => {
                let t = type_of(r)?;
                if !matches!(&t, ValueType::List(item) if item.is_numeric()) {
                    return bad(r, &t, "statistics need a list of numbers");
                }
                Ok(match stat {
                    ListStat::ArgMax | ListStat::Len => DataType::Int64,
                    _ => DataType::Float64,
                })
            }
            Expr::Number(_) => Ok(DataType::Float64),
            Expr::Neg(e) => e.check(type_of).map(|_| DataType::Float64),
            Expr::Binary(a, _, b) => {
                a.check(type_of)?;
                b.check(type_of)?;
                Ok(DataType::Float64)
            }
        }
    }

    /// Evaluates over `rows` rows, reading each input with `column`.
    pub fn evaluate(
        &self,
        rows: usize,
        column: &impl Fn(&FeatureRef) -> Result<ArrayRef>,
    ) -> Result<ArrayRef> {
        Ok(match self {
            Expr::Stat(stat @ (ListStat::ArgMax | ListStat::Len), r) => {
                let lists = float_lists(&column(r)?)?;
                let stat = *stat;
                std::sync::Arc::new(
                    (0..rows)
                        .map(|i| list_stat(stat, &lists, i).map(|v| v as i64))
                        .collect::<Int64Array>(),
                )
            }
            _ => std::sync::Arc::new(self.numbers(rows, column)?),
        })
    }

    fn numbers(
        &self,
        rows: usize,
        column: &impl Fn(&FeatureRef) -> Result<ArrayRef>,
    ) -> Result<Float64Array> {
        Ok(match self {
            Expr::Feature(r) => cast(&column(r)?, &DataType::Float64)?
                .as_primitive::<Float64Type>()
                .clone(),
            Expr::Number(n) => Float64Array::from(vec![*n; rows]),
            Expr::Neg(e) => e
                .numbers(rows, column)?
                .iter()
                .map(|v| v.map(|v| -v))
                .collect(),
            Expr::Stat(stat, r) => {
                let lists = float_lists(&column(r)?)?;
                (0..rows).map(|i| list_stat(*stat, &lists, i)).collect()
            }
            Expr::Binary(a, op, b) => {
                let (a, b) = (a.numbers(rows, column)?, b.numbers(rows, column)?);
                a.iter()
                    .zip(b.iter())
                    .map(|(x, y)| {
                        let (x, y) = (x?, y?);
                        match op {
                            Op::Add => Some(x + y),
                            Op::Sub => Some(x - y),
                            Op::Mul => Some(x * y),
                            Op::Div if y == 0.0 => None,
                            Op::Div => Some(x / y),
                        }
                    })
                    .collect()
            }
        })
    }
}

/// A request with on-demand features, split into what the views are asked for and what is
/// computed after: inputs nobody asked for are fetched, used and dropped.
#[derive(Debug)]
pub(crate) struct Derivation {
    fetch: Vec<FeatureRef>,
    hidden: Vec<FeatureRef>,
    /// Each derived column: its view's name, and the feature.
    outputs: Vec<(Name, DerivedFeature)>,
}

impl Derivation {
    pub(crate) fn plan(defs: &Definitions, refs: &[FeatureRef]) -> Result<Self> {
        let mut fetch = Vec::new();
        let mut outputs = Vec::new();
        for r in refs {
            match defs.on_demand_feature_view(r.view.as_str()) {
                Some(view) => {
                    defs.check_ref(r)?;
                    let feature = view.feature(&r.feature).expect("checked");
                    if outputs.iter().any(|(v, f): &(Name, DerivedFeature)| {
                        *v == view.name && f.name == feature.name
                    }) {
                        return Err(Error::invalid(
                            "feature references",
                            r.to_string(),
                            "requested twice",
                        ));
                    }
                    outputs.push((view.name.clone(), feature.clone()));
                }
                None => fetch.push(r.clone()),
            }
        }
        let mut hidden = Vec::new();
        for (_, f) in &outputs {
            for input in f.expression.inputs() {
                if !fetch.contains(input) {
                    fetch.push(input.clone());
                    hidden.push(input.clone());
                }
            }
        }
        Ok(Derivation {
            fetch,
            hidden,
            outputs,
        })
    }

    /// The features to ask the views for.
    pub(crate) fn fetch(&self) -> &[FeatureRef] {
        &self.fetch
    }

    /// Appends the derived columns to what the views returned and drops the extra inputs.
    pub(crate) fn finish(&self, batch: RecordBatch, full_names: bool) -> Result<RecordBatch> {
        if self.outputs.is_empty() {
            return Ok(batch);
        }
        let name_of = |view: &str, feature: &str| {
            if full_names {
                format!("{view}__{feature}")
            } else {
                feature.to_owned()
            }
        };
        let column = |r: &FeatureRef| -> Result<ArrayRef> {
            let name = name_of(r.view.as_str(), &r.feature);
            batch.column_by_name(&name).cloned().ok_or_else(|| {
                Error::invalid("on-demand feature input", name, "missing from the result")
            })
        };
        let mut fields: Vec<Field> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        let schema = batch.schema();
        for (i, field) in schema.fields().iter().enumerate() {
            let hidden = self
                .hidden
                .iter()
                .any(|r| &name_of(r.view.as_str(), &r.feature) == field.name());
            if !hidden {
                fields.push(field.as_ref().clone());
                columns.push(batch.column(i).clone());
            }
        }
        for (view, feature) in &self.outputs {
            let name = name_of(view.as_str(), &feature.name);
            if fields.iter().any(|f| f.name() == &name) {
                return Err(Error::invalid(
                    "feature references",
                    name,
                    "two requested columns have this name; ask for full feature names",
                ));
            }
            let values = feature.expression.evaluate(batch.num_rows(), &column)?;
            fields.push(Field::new(name, values.data_type().clone(), true));
            columns.push(values);
        }
        Ok(RecordBatch::try_new(
            std::sync::Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}

/// A list column with Float64 items.
fn float_lists(array: &ArrayRef) -> Result<ListArray> {
    let DataType::List(item) = array.data_type() else {
        return Err(Error::invalid(
            "on-demand feature input",
            array.data_type().to_string(),
            "expected a list column",
        ));
    };
    let target = DataType::List(std::sync::Arc::new(
        item.as_ref().clone().with_data_type(DataType::Float64),
    ));
    Ok(cast(array, &target)?.as_list::<i32>().clone())
}

fn list_stat(stat: ListStat, lists: &ListArray, row: usize) -> Option<f64> {
    if lists.is_null(row) {
        return None;
    }
    let items = lists.value(row);
    let items = items.as_primitive::<Float64Type>();
    if items.null_count() > 0 || items.is_empty() {
        return None;
    }
    let v = items.values();
    let n = v.len() as f64;
    let sum: f64 = v.iter().sum();
    match stat {
        ListStat::Len => Some(n),
        ListStat::Mean => Some(sum / n),
        ListStat::Std => {
            let mean = sum / n;
            Some((v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt())
        }
        ListStat::Min => v.iter().copied().reduce(f64::min),
        ListStat::Max => v.iter().copied().reduce(f64::max),
        // The first of equal maxima, as numpy's argmax.
        ListStat::ArgMax => v
            .iter()
            .enumerate()
            .fold(None, |best: Option<(usize, f64)>, (i, &x)| match best {
                Some((_, b)) if b >= x => best,
                _ => Some((i, x)),
            })
            .map(|(i, _)| i as f64),
        ListStat::Energy => Some(v.iter().map(|x| x * x).sum()),
        ListStat::BandRatio { lo, hi } => {
            let band: f64 = v[lo.min(v.len())..hi.min(v.len())].iter().sum();
            (sum != 0.0).then(|| band / sum)
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Feature(r) => write!(f, "{r}"),
            Expr::Number(n) => write!(f, "{n}"),
            Expr::Neg(e) => write!(f, "-({e})"),
            Expr::Binary(a, op, b) => {
                let op = match op {
                    Op::Add => '+',
                    Op::Sub => '-',
                    Op::Mul => '*',
                    Op::Div => '/',
                };
                write!(f, "({a} {op} {b})")
            }
            Expr::Stat(ListStat::BandRatio { lo, hi }, r) => {
                write!(f, "band_ratio({r}, {lo}, {hi})")
            }
            Expr::Stat(stat, r) => {
                let name = match stat {
                    ListStat::Mean => "mean",
                    ListStat::Std => "std",
                    ListStat::Min => "min",
                    ListStat::Max => "max",
                    ListStat::ArgMax => "argmax",
                    ListStat::Energy => "energy",
                    ListStat::Len => "len",
                    ListStat::BandRatio { .. } => unreachable!("written above"),
                };
                write!(f, "{name}({r})")
            }
        }
    }
}

impl FromStr for Expr {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        if text.len() > MAX_EXPRESSION_BYTES {
            return Err(expression_error(
                text,
                format!(
                    "is {} bytes long; at most {MAX_EXPRESSION_BYTES} are accepted",
                    text.len()
                ),
            ));
        }
        Parser {
            text,
            tokens: tokenize(text)?,
            at: 0,
            operands: Vec::new(),
            operators: Vec::new(),
        }
        .parse()
    }
}

/// An error about the expression `text`, shown shortened when it is long.
fn expression_error(text: &str, reason: String) -> Error {
    const SHOWN: usize = 80;
    let value = if text.len() <= SHOWN {
        text.to_owned()
    } else {
        let end = (0..=SHOWN)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}… ({} bytes)", &text[..end], text.len())
    };
    Error::invalid("on-demand expression", value, reason)
}

impl Serialize for Expr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A name, a `view:feature` reference, or a number's text.
    Word(String),
    Number(f64),
    Punct(char),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Word(w) => write!(f, "{w:?}"),
            Token::Number(n) => write!(f, "{n}"),
            Token::Punct(c) => write!(f, "'{c}'"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if "+-*/(),".contains(c) {
            tokens.push(Token::Punct(c));
            chars.next();
        } else if c.is_ascii_digit() || c == '.' {
            let mut end = start;
            while let Some(&(i, d)) = chars.peek() {
                if d.is_ascii_digit() || d == '.' || d == 'e' || d == 'E' {
                    end = i + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let number = text[start..end]
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| {
                    expression_error(text, format!("bad number {:?}", &text[start..end]))
                })?;
            tokens.push(Token::Number(number));
        } else if c.is_alphanumeric() || c == '_' {
            let mut end = start;
            while let Some(&(i, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' || d == ':' {
                    end = i + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(Token::Word(text[start..end].to_owned()));
        } else {
            return Err(expression_error(
                text,
                format!("unexpected character {c:?} at {start}"),
            ));
        }
    }
    Ok(tokens)
}

/// Operator precedence without recursion: operands and operators go on two stacks, so no
/// input, however nested, deepens the call stack. The grammar is the usual one: `*` and `/`
/// bind tighter than `+` and `-`, all left-associative; unary `-` binds tightest.
struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    at: usize,
    /// Parsed subtrees, each with its depth.
    operands: Vec<(Expr, usize)>,
    operators: Vec<Pending>,
}

/// An operator waiting for its right operand, or an open parenthesis.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pending {
    Binary(Op),
    Neg,
    Open,
}

impl Op {
    fn precedence(self) -> u8 {
        match self {
            Op::Add | Op::Sub => 1,
            Op::Mul | Op::Div => 2,
        }
    }
}

impl Parser<'_> {
    fn error(&self, reason: String) -> Error {
        expression_error(self.text, reason)
    }

    fn parse(mut self) -> Result<Expr> {
        let mut want_operand = true;
        while let Some(token) = self.next() {
            if want_operand {
                let operand = match token {
                    Token::Punct('-') => {
                        self.operators.push(Pending::Neg);
                        continue;
                    }
                    Token::Punct('(') => {
                        self.operators.push(Pending::Open);
                        continue;
                    }
                    Token::Number(n) => Expr::Number(n),
                    Token::Word(w) if w.contains(':') => Expr::Feature(w.parse()?),
                    Token::Word(w) => self.call(&w)?,
                    t => return Err(self.error(format!("unexpected {t}"))),
                };
                self.operands.push((operand, 1));
                self.negate_pending()?;
                want_operand = false;
            } else {
                let op = match token {
                    Token::Punct('+') => Op::Add,
                    Token::Punct('-') => Op::Sub,
                    Token::Punct('*') => Op::Mul,
                    Token::Punct('/') => Op::Div,
                    Token::Punct(')') => {
                        self.close()?;
                        continue;
                    }
                    t => return Err(self.error(format!("unexpected {t}"))),
                };
                while let Some(Pending::Binary(top)) = self.operators.last().copied()
                    && top.precedence() >= op.precedence()
                {
                    self.operators.pop();
                    self.apply(top)?;
                }
                self.operators.push(Pending::Binary(op));
                want_operand = true;
            }
        }
        if want_operand {
            return Err(self.error("ends too early".into()));
        }
        while let Some(pending) = self.operators.pop() {
            match pending {
                Pending::Binary(op) => self.apply(op)?,
                Pending::Open => return Err(self.error("expected ')'".into())),
                Pending::Neg => unreachable!("negations are applied to their operand at once"),
            }
        }
        Ok(self.operands.pop().expect("one operand is left").0)
    }

    /// Applies the negations waiting right before the operand on top.
    fn negate_pending(&mut self) -> Result<()> {
        while self.operators.last() == Some(&Pending::Neg) {
            self.operators.pop();
            let (e, depth) = self.operands.pop().expect("an operand");
            self.operands
                .push((Expr::Neg(Box::new(e)), self.deeper(depth)?));
        }
        Ok(())
    }

    /// Closes a parenthesis: applies the operators inside it; the group is an operand.
    fn close(&mut self) -> Result<()> {
        loop {
            match self.operators.pop() {
                Some(Pending::Binary(op)) => self.apply(op)?,
                Some(Pending::Open) => return self.negate_pending(),
                Some(Pending::Neg) => {
                    unreachable!("negations are applied to their operand at once")
                }
                None => return Err(self.error("unexpected ')'".into())),
            }
        }
    }

    /// Replaces the two operands on top by `a op b`.
    fn apply(&mut self, op: Op) -> Result<()> {
        let (b, db) = self.operands.pop().expect("a right operand");
        let (a, da) = self.operands.pop().expect("a left operand");
        let depth = self.deeper(da.max(db))?;
        self.operands
            .push((Expr::Binary(Box::new(a), op, Box::new(b)), depth));
        Ok(())
    }

    /// The depth of a node above a subtree `depth` deep, if within the bound.
    fn deeper(&self, depth: usize) -> Result<usize> {
        if depth >= MAX_EXPRESSION_DEPTH {
            return Err(self.error(format!(
                "nests deeper than {MAX_EXPRESSION_DEPTH} levels (operators and negations \
                 each add one); split it into several on-demand features"
            )));
        }
        Ok(depth + 1)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn eat(&mut self, c: char) -> bool {
        if self.tokens.get(self.at) == Some(&Token::Punct(c)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(format!("expected '{c}'")))
        }
    }

    fn call(&mut self, name: &str) -> Result<Expr> {
        self.expect('(')?;
        let feature = match self.next() {
            Some(Token::Word(w)) if w.contains(':') => w.parse::<FeatureRef>()?,
            _ => return Err(self.error(format!("{name}() takes a view:feature reference"))),
        };
        let stat = match name {
            "mean" => ListStat::Mean,
            "std" => ListStat::Std,
            "min" => ListStat::Min,
            "max" => ListStat::Max,
            "argmax" => ListStat::ArgMax,
            "energy" => ListStat::Energy,
            "len" => ListStat::Len,
            "band_ratio" => {
                let mut bound = || -> Result<usize> {
                    self.expect(',')?;
                    match self.next() {
                        Some(Token::Number(n)) if n >= 0.0 && n.fract() == 0.0 => Ok(n as usize),
                        _ => {
                            Err(self.error("band_ratio's bounds are item indices (0, 1, …)".into()))
                        }
                    }
                };
                let (lo, hi) = (bound()?, bound()?);
                if lo >= hi {
                    return Err(self.error(format!("band_ratio's band {lo}..{hi} is empty")));
                }
                ListStat::BandRatio { lo, hi }
            }
            other => {
                return Err(self.error(format!(
                    "unknown function {other:?} (mean, std, min, max, argmax, energy, len, band_ratio)"
                )));
            }
        };
        self.expect(')')?;
        Ok(Expr::Stat(stat, feature))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Float32Builder, ListBuilder};

    fn parse(text: &str) -> Expr {
        text.parse().unwrap()
    }

    #[test]
    fn expressions_parse_with_precedence_and_round_trip() {
        let e = parse("a:x + 2 * -b:y / (a:x - 1)");
        assert_eq!(e.to_string(), "(a:x + ((2 * -(b:y)) / (a:x - 1)))");
        assert_eq!(parse(&e.to_string()), e);
        assert_eq!(
            parse("band_ratio(v:spec, 0, 8)"),
            Expr::Stat(
                ListStat::BandRatio { lo: 0, hi: 8 },
                "v:spec".parse().unwrap()
            )
        );
        for bad in [
            "",
            "a:x +",
            "mean(1)",
            "median(v:x)",
            "band_ratio(v:x, 3, 3)",
            "band_ratio(v:x, 0.5, 2)",
            "a:x; drop",
            "(a:x",
            "a:x)",
            "x",
        ] {
            assert!(bad.parse::<Expr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn long_or_deep_expressions_are_refused_with_a_short_message() {
        let chain = |n: usize| vec!["v:x"; n].join(" + ");
        assert_eq!(
            parse(&chain(MAX_EXPRESSION_DEPTH)).inputs().len(),
            MAX_EXPRESSION_DEPTH
        );
        let deep = |text: &str| {
            let e = text.parse::<Expr>().unwrap_err().to_string();
            assert!(e.contains("nests deeper than 64"), "{e}");
            assert!(e.len() < 400, "{e}");
        };
        deep(&chain(MAX_EXPRESSION_DEPTH + 1));
        // Parentheses build no tree and take no stack.
        assert_eq!(
            parse(&format!("{}v:x{}", "(".repeat(2000), ")".repeat(2000))),
            parse("v:x")
        );
        // The stored form of the deepest tree accepted reads back.
        let deepest = parse(&format!("{}v:x", "-".repeat(MAX_EXPRESSION_DEPTH - 1)));
        assert_eq!(parse(&deepest.to_string()), deepest);
        let deepest = parse(&chain(MAX_EXPRESSION_DEPTH));
        assert_eq!(parse(&deepest.to_string()), deepest);
        assert!("1e309 * v:x".parse::<Expr>().is_err());
        deep(&format!("{}v:x", "-".repeat(2000)));
        deep(&format!("{}1", "2 * ".repeat(1000)));
        let long = chain(10_000);
        let e = long.parse::<Expr>().unwrap_err().to_string();
        assert!(e.contains("at most 4096"), "{e}");
        assert!(e.len() < 400, "{e}");
    }

    #[test]
    fn statistics_and_arithmetic_give_null_instead_of_made_up_numbers() {
        let mut lists = ListBuilder::new(Float32Builder::new());
        lists.values().append_slice(&[1.0, 3.0, 3.0, 2.0]);
        lists.append(true);
        lists.append(true); // empty
        lists.append(false); // null
        let lists: ArrayRef = Arc::new(lists.finish());
        let x: ArrayRef = Arc::new(Float64Array::from(vec![Some(2.0), Some(0.0), None]));
        let column = |r: &FeatureRef| -> Result<ArrayRef> {
            Ok(if r.feature == "l" {
                lists.clone()
            } else {
                x.clone()
            })
        };
        let eval = |text: &str| parse(text).evaluate(3, &column).unwrap();
        let floats = |a: ArrayRef| a.as_primitive::<Float64Type>().iter().collect::<Vec<_>>();
        assert_eq!(floats(eval("mean(v:l)")), vec![Some(2.25), None, None]);
        assert_eq!(floats(eval("max(v:l)")), vec![Some(3.0), None, None]);
        assert_eq!(floats(eval("energy(v:l)")), vec![Some(23.0), None, None]);
        assert_eq!(
            floats(eval("band_ratio(v:l, 1, 3)")),
            vec![Some(6.0 / 9.0), None, None]
        );
        let std = floats(eval("std(v:l)"))[0].unwrap();
        assert!((std - 0.82915619758885).abs() < 1e-12, "{std}");
        let argmax = eval("argmax(v:l)");
        assert_eq!(
            argmax
                .as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .collect::<Vec<_>>(),
            vec![Some(1), None, None]
        );
        assert_eq!(floats(eval("1 / v:x")), vec![Some(0.5), None, None]);
        assert_eq!(
            floats(eval("-v:x * 3 + mean(v:l)")),
            vec![Some(-3.75), None, None]
        );
    }

    #[test]
    fn types_are_checked_before_any_data_is_read() {
        let type_of = |r: &FeatureRef| -> Result<ValueType> {
            Ok(match r.feature.as_str() {
                "l" => ValueType::List(Box::new(ValueType::Float32)),
                "s" => ValueType::String,
                _ => ValueType::Float64,
            })
        };
        assert_eq!(
            parse("argmax(v:l)").check(&type_of).unwrap(),
            DataType::Int64
        );
        assert_eq!(
            parse("mean(v:l) / v:x").check(&type_of).unwrap(),
            DataType::Float64
        );
        assert!(parse("mean(v:x)").check(&type_of).is_err());
        assert!(parse("v:l + 1").check(&type_of).is_err());
        assert!(parse("v:s * 2").check(&type_of).is_err());
    }
}
