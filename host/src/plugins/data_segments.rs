//! Fewer, larger data segments for components whose memory is copied in
//! (`memory_init = "copy"`).
//!
//! wasmtime 48 initialises a copied memory one active data segment at a time, in a
//! start-up routine that runs at every instantiation, so each segment costs a call
//! and its bounds checks on every webhook. A snapshotting toolchain can emit
//! thousands of small segments a few bytes apart: ComponentizeJS's receiver has
//! 10,000, which cost it about an eighth of its CPU per call (BENCHMARKS.md). Before
//! compiling such a component the host merges each core module's segments that lie
//! at most `MAX_GAP` bytes apart, filling the gaps with the zeros they held anyway,
//! which leaves that receiver 115 segments and 9% more bytes to copy.
//!
//! The memory each call starts with is byte for byte the same. A module is left as
//! it is unless every segment is active, in memory 0, at a constant `i32` offset,
//! and none overlaps another (so their order does not matter), and unless no code
//! names a segment (`memory.init`, `data.drop`): merging renumbers them.

use wasm_encoder::{ConstExpr, DataCountSection, DataSection, RawSection, Section};
use wasmparser::{BinaryReader, DataKind, Operator, Parser, Payload};

/// Zero bytes between two segments that are merged rather than kept apart: a few
/// cache lines, small against the cost of a segment.
const MAX_GAP: u64 = 256;

/// `component` (or core module) with each core module's data segments merged, or
/// `None` when no module changes (or the bytes do not parse: the compiler will say
/// what is wrong with them).
pub fn merged(component: &[u8]) -> Option<Vec<u8>> {
    let mut changed = false;
    let out = rewrite(component, &mut changed)?;
    changed.then_some(out)
}

/// Re-emits a component or module with its nested modules rewritten; sets
/// `changed` if any was.
fn rewrite(binary: &[u8], changed: &mut bool) -> Option<Vec<u8>> {
    let header = binary.get(..8)?;
    // Bytes 4..8: version 1 is a core module; a component has layer 1 in 6..8.
    let is_module = header[4..] == [1, 0, 0, 0];
    if is_module {
        return match merge_module(binary) {
            Some(module) => {
                *changed = true;
                Some(module)
            }
            None => Some(binary.to_vec()),
        };
    }
    let mut out = header.to_vec();
    for (id, body) in sections(&binary[8..])? {
        // Component sections 1 (core module) and 4 (component) nest binaries.
        let body = match id {
            1 | 4 => rewrite(body, changed)?,
            _ => body.to_vec(),
        };
        RawSection { id, data: &body }.append_to(&mut out);
    }
    Some(out)
}

/// The module with its segments merged, or `None` when it is left as it is.
fn merge_module(module: &[u8]) -> Option<Vec<u8>> {
    let mut segments = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        match payload.ok()? {
            Payload::DataSection(reader) => {
                for data in reader {
                    let data = data.ok()?;
                    let DataKind::Active {
                        memory_index: 0,
                        offset_expr,
                    } = data.kind
                    else {
                        return None;
                    };
                    // Exactly `i32.const N end`: an extended constant expression
                    // may start with one and add a global to it.
                    let mut offset = offset_expr.get_operators_reader();
                    let (Ok(Operator::I32Const { value }), Ok(Operator::End)) =
                        (offset.read(), offset.read())
                    else {
                        return None;
                    };
                    segments.push((u64::from(value as u32), data.data));
                }
            }
            Payload::CodeSectionEntry(body) => {
                for operator in body.get_operators_reader().ok()? {
                    if matches!(
                        operator.ok()?,
                        Operator::MemoryInit { .. } | Operator::DataDrop { .. }
                    ) {
                        return None;
                    }
                }
            }
            _ => {}
        }
    }
    let merged = merge(segments)?;

    let mut data = DataSection::new();
    for (offset, bytes) in &merged {
        data.active(
            0,
            &ConstExpr::i32_const(*offset as u32 as i32),
            bytes.iter().copied(),
        );
    }
    let count = DataCountSection {
        count: merged.len() as u32,
    };
    let mut out = module[..8].to_vec();
    for (id, body) in sections(&module[8..])? {
        match id {
            11 => data.append_to(&mut out),
            12 => count.append_to(&mut out),
            _ => RawSection { id, data: body }.append_to(&mut out),
        }
    }
    Some(out)
}

/// Segments sorted and joined across gaps of at most `MAX_GAP`; `None` if two
/// overlap or nothing would be merged.
fn merge(mut segments: Vec<(u64, &[u8])>) -> Option<Vec<(u64, Vec<u8>)>> {
    segments.sort_by_key(|(offset, _)| *offset);
    let mut merged: Vec<(u64, Vec<u8>)> = Vec::new();
    for (offset, bytes) in &segments {
        match merged.last_mut() {
            Some((start, joined)) if *offset < *start + joined.len() as u64 => return None,
            Some((start, joined)) if *offset - (*start + joined.len() as u64) <= MAX_GAP => {
                let gap = *offset - (*start + joined.len() as u64);
                joined.resize(joined.len() + gap as usize, 0);
                joined.extend_from_slice(bytes);
            }
            _ => merged.push((*offset, bytes.to_vec())),
        }
    }
    (merged.len() < segments.len()).then_some(merged)
}

/// The sections of a module's or component's body (after its 8-byte header), as
/// (id, contents).
fn sections(body: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut reader = BinaryReader::new(body, 8);
    let mut sections = Vec::new();
    while !reader.eof() {
        let id = reader.read_u8().ok()?;
        let size = reader.read_var_u32().ok()?;
        sections.push((id, reader.read_bytes(size as usize).ok()?));
    }
    Some(sections)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{CodeSection, Function, FunctionSection, Instruction, MemorySection};
    use wasm_encoder::{MemoryType, Module, TypeSection};

    fn module(segments: &[(ConstExpr, &[u8])], code: Option<Instruction>) -> Vec<u8> {
        let mut module = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        module.section(&types);
        let mut functions = FunctionSection::new();
        functions.function(0);
        module.section(&functions);
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        module.section(&memories);
        module.section(&DataCountSection {
            count: segments.len() as u32,
        });
        let mut body = Function::new([]);
        if let Some(instruction) = code {
            body.instruction(&instruction);
        }
        body.instruction(&Instruction::End);
        let mut codes = CodeSection::new();
        codes.function(&body);
        module.section(&codes);
        let mut data = DataSection::new();
        for (offset, bytes) in segments {
            data.active(0, offset, bytes.iter().copied());
        }
        module.section(&data);
        module.finish()
    }

    /// The memory a module starts with: its segments applied to 64 KiB of zeros.
    fn initial_memory(module: &[u8]) -> Vec<u8> {
        let mut memory = vec![0u8; 65536];
        let mut segments = 0;
        for payload in Parser::new(0).parse_all(module) {
            if let Payload::DataSection(reader) = payload.unwrap() {
                for data in reader {
                    let data = data.unwrap();
                    let DataKind::Active { offset_expr, .. } = data.kind else {
                        panic!("passive")
                    };
                    let Ok(Operator::I32Const { value }) =
                        offset_expr.get_operators_reader().read()
                    else {
                        panic!("offset")
                    };
                    let at = value as usize;
                    memory[at..at + data.data.len()].copy_from_slice(data.data);
                    segments += 1;
                }
            }
        }
        memory.push(segments);
        memory
    }

    fn at(offset: i32) -> ConstExpr {
        ConstExpr::i32_const(offset)
    }

    #[test]
    fn close_segments_merge_and_the_memory_is_the_same() {
        let original = module(
            &[
                (at(600), b"far"),
                (at(10), b"abc"),
                (at(20), b"de"),
                (at(276), b"f"),
            ],
            None,
        );
        let merged = merged(&original).expect("merged");
        wasmparser::validate(&merged).unwrap();
        let (before, after) = (initial_memory(&original), initial_memory(&merged));
        assert_eq!(before[..65536], after[..65536]);
        // 10..=276 became one segment; 600 is more than MAX_GAP from it.
        assert_eq!((before[65536], after[65536]), (4, 2));
    }

    #[test]
    fn modules_it_cannot_prove_alike_are_left_alone() {
        let overlapping = module(&[(at(10), b"abcdef"), (at(12), b"x")], None);
        assert_eq!(merged(&overlapping), None);
        let named = module(
            &[(at(10), b"abc"), (at(20), b"de")],
            Some(Instruction::DataDrop(0)),
        );
        assert_eq!(merged(&named), None);
        let apart = module(&[(at(10), b"abc"), (at(10_000), b"de")], None);
        assert_eq!(merged(&apart), None);
        // `i32.const 20 i32.const 5 i32.add` (25): not the constant it starts with.
        let extended = ConstExpr::i32_const(20).with_i32_const(5).with_i32_add();
        let computed = module(&[(at(10), b"abc"), (extended, b"de")], None);
        assert_eq!(merged(&computed), None);
        assert_eq!(merged(b"not wasm at all"), None);
    }
}
