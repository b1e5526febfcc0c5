//! The image platform, read from the binary's ELF header.

use goblin::elf::{Elf, header};

/// OCI `architecture`, `variant` and `os` for an ELF file, or `None` if `bytes` is not ELF.
/// Err(machine) for an ELF file of an architecture OCI has no name for.
pub fn platform(bytes: &[u8]) -> Option<Result<Platform, u16>> {
    if bytes.len() < header::SIZEOF_IDENT || &bytes[..header::SELFMAG] != header::ELFMAG {
        return None;
    }
    let h = Elf::parse_header(bytes).ok()?;
    let is64 = h.e_ident[header::EI_CLASS] == header::ELFCLASS64;
    let little = h.e_ident[header::EI_DATA] == header::ELFDATA2LSB;
    let (architecture, variant) = match (h.e_machine, is64, little) {
        (header::EM_X86_64, true, _) => ("amd64", None),
        (header::EM_AARCH64, true, _) => ("arm64", Some("v8")),
        (header::EM_386, false, _) => ("386", None),
        (header::EM_ARM, false, _) => ("arm", Some("v7")),
        (header::EM_RISCV, true, _) => ("riscv64", None),
        (header::EM_PPC64, true, true) => ("ppc64le", None),
        (header::EM_S390, true, _) => ("s390x", None),
        (machine, _, _) => return Some(Err(machine)),
    };
    Some(Ok(Platform {
        architecture: architecture.to_string(),
        variant: variant.map(str::to_string),
        os: "linux".to_string(),
    }))
}

/// The program interpreter (`PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`) of a dynamically
/// linked ELF file, read from its header and program headers only. None for a static binary.
pub fn interpreter(file: &std::path::Path) -> std::io::Result<Option<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file)?;
    let mut head = [0u8; 64];
    let n = f.read(&mut head)?;
    let Ok(h) = Elf::parse_header(&head[..n]) else { return Ok(None) };
    let (Ok(container), Ok(le)) = (h.container(), h.endianness()) else { return Ok(None) };
    let table = u64::from(h.e_phnum) * u64::from(h.e_phentsize);
    if table == 0 || table > 1 << 20 {
        return Ok(None);
    }
    let mut phdrs = vec![0u8; table as usize];
    f.seek(SeekFrom::Start(h.e_phoff))?;
    f.read_exact(&mut phdrs)?;
    let ctx = goblin::container::Ctx::new(container, le);
    let Ok(headers) = goblin::elf::ProgramHeader::parse(&phdrs, 0, usize::from(h.e_phnum), ctx) else {
        return Ok(None);
    };
    let Some(interp) = headers.iter().find(|p| p.p_type == goblin::elf::program_header::PT_INTERP) else {
        return Ok(None);
    };
    let mut path = vec![0u8; interp.p_filesz.min(4096) as usize];
    f.seek(SeekFrom::Start(interp.p_offset))?;
    f.read_exact(&mut path)?;
    let end = path.iter().position(|b| *b == 0).unwrap_or(path.len());
    Ok(Some(String::from_utf8_lossy(&path[..end]).into_owned()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub variant: Option<String>,
    pub os: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, machine: u16) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = 1; // little endian
        h[6] = 1;
        h[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h
    }

    #[test]
    fn maps_machines_to_oci_names() {
        let p = platform(&header(2, 62)).unwrap().unwrap();
        assert_eq!((p.architecture.as_str(), p.os.as_str()), ("amd64", "linux"));
        let p = platform(&header(2, 183)).unwrap().unwrap();
        assert_eq!((p.architecture.as_str(), p.variant.as_deref()), ("arm64", Some("v8")));
    }

    #[test]
    fn rejects_non_elf_and_unknown_machines() {
        assert!(platform(b"#!/bin/sh\necho hi\n").is_none());
        assert!(platform(b"").is_none());
        assert_eq!(platform(&header(2, 9999)).unwrap(), Err(9999));
    }

    #[test]
    fn dynamic_binaries_name_their_interpreter() {
        // The test binary itself is linked dynamically by cargo's defaults.
        let me = std::env::current_exe().unwrap();
        let interp = interpreter(&me).unwrap().expect("a dynamically linked test binary");
        assert!(interp.contains("ld-"), "{interp}");
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert_eq!(interpreter(&script).unwrap(), None);
    }

    #[test]
    fn reads_the_test_binary_itself() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let p = platform(&me).unwrap().unwrap();
        let expected = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        assert_eq!(p.architecture, expected);
    }
}
