//! Entity rows from Python as an Arrow record batch.
//!
//! A list of dicts of strings and integers (the usual shape of an online lookup) is read here
//! directly, column per key of the first dict as `pyarrow.Table.from_pylist` does, without the
//! round trip through pyarrow that cost more than the lookup itself; anything else goes
//! through `trainstore.features._to_batch`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, NullArray, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::pyarrow::FromPyArrow;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString};
use trainstore::Error;

use crate::errors::to_py;

/// One column of dict values, typed by the values seen so far.
enum Column {
    Nulls(usize),
    Strings(StringBuilder),
    Ints(Int64Builder),
}

impl Column {
    /// Appends `value`; `false` when it is of a type this reader does not handle.
    fn push(&mut self, value: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let Some(value) = value.filter(|v| !v.is_none()) else {
            match self {
                Column::Nulls(n) => *n += 1,
                Column::Strings(b) => b.append_null(),
                Column::Ints(b) => b.append_null(),
            }
            return Ok(true);
        };
        if let Column::Nulls(n) = *self {
            let mut column = if value.is_instance_of::<PyString>() {
                Column::Strings(StringBuilder::new())
            } else {
                Column::Ints(Int64Builder::new())
            };
            for _ in 0..n {
                column.push(None)?;
            }
            *self = column;
        }
        match self {
            Column::Strings(b) => match value.cast::<PyString>() {
                Ok(s) => b.append_value(s.to_str()?),
                Err(_) => return Ok(false),
            },
            Column::Ints(b) => {
                if !value.is_instance_of::<PyInt>() || value.is_instance_of::<PyBool>() {
                    return Ok(false);
                }
                match value.extract::<i64>() {
                    Ok(v) => b.append_value(v),
                    Err(_) => return Ok(false),
                }
            }
            Column::Nulls(_) => unreachable!("typed above"),
        }
        Ok(true)
    }

    fn finish(self) -> ArrayRef {
        match self {
            Column::Nulls(n) => Arc::new(NullArray::new(n)),
            Column::Strings(mut b) => Arc::new(b.finish()),
            Column::Ints(mut b) => Arc::new(b.finish()),
        }
    }
}

/// The rows of a list of dicts holding only strings, integers and None; `None` otherwise.
fn dict_rows(list: &Bound<'_, PyList>) -> PyResult<Option<RecordBatch>> {
    let Some(first) = list.iter().next() else {
        return Ok(None);
    };
    let Ok(first) = first.cast_into::<PyDict>() else {
        return Ok(None);
    };
    let names: Vec<Bound<'_, PyString>> = match first
        .keys()
        .iter()
        .map(|k| k.cast_into::<PyString>())
        .collect()
    {
        Ok(names) => names,
        Err(_) => return Ok(None),
    };
    if names.is_empty() {
        return Err(to_py(Error::invalid(
            "entity rows",
            "[{}]",
            "the first row names no join keys",
        )));
    }
    let mut columns: Vec<Column> = names.iter().map(|_| Column::Nulls(0)).collect();
    for row in list.iter() {
        let Ok(row) = row.cast_into::<PyDict>() else {
            return Ok(None);
        };
        for (name, column) in names.iter().zip(&mut columns) {
            if !column.push(row.get_item(name)?.as_ref())? {
                return Ok(None);
            }
        }
    }
    let mut fields = Vec::with_capacity(names.len());
    let mut arrays = Vec::with_capacity(names.len());
    for (name, column) in names.iter().zip(columns) {
        let array = column.finish();
        let dtype: DataType = array.data_type().clone();
        fields.push(Field::new(name.to_str()?, dtype, true));
        arrays.push(array);
    }
    Ok(Some(
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?,
    ))
}

/// Entity rows given as a pyarrow record batch, or as a list of dicts.
pub fn entity_batch(rows: &Bound<'_, PyAny>) -> PyResult<RecordBatch> {
    if let Ok(list) = rows.cast::<PyList>() {
        if let Some(batch) = dict_rows(list)? {
            return Ok(batch);
        }
        let converted = rows
            .py()
            .import("trainstore.features")?
            .call_method1("_to_batch", (list,))?;
        return RecordBatch::from_pyarrow_bound(&converted);
    }
    RecordBatch::from_pyarrow_bound(rows)
}
