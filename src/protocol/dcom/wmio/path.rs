//! WMI object paths (`\\SERVER\root\cimv2:Win32_Service.Name="x"`) as CIM references.

use crate::cim::Reference;

/// Parses an object path into a reference: the `\\server\namespace` prefix becomes the
/// address, the class the resource URI, and the key bindings the selectors (quotes and
/// backslash escapes removed). A singleton (`Class=@`) has no selectors. Text that is not a
/// well-formed path is kept whole as the resource URI rather than guessed at.
pub fn parse(path: &str) -> Reference {
    let (address, rest) = split_namespace(path);
    let (class, keys) = match rest.find(['.', '=']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let selectors = if keys.is_empty() || keys == "=@" {
        Some(Vec::new())
    } else if let Some(value) = keys.strip_prefix('=') {
        // An unnamed single key: `Class="value"`.
        parse_value(value).and_then(|(v, tail)| tail.is_empty().then(|| vec![(String::new(), v)]))
    } else {
        keys.strip_prefix('.').and_then(parse_bindings)
    };
    match selectors {
        Some(selectors) => Reference { address, resource_uri: class.to_string(), selectors },
        None => Reference { address: None, resource_uri: path.to_string(), selectors: Vec::new() },
    }
}

/// Splits `\\server\ns:rest` or `ns:rest`; a colon inside a quoted key value does not count.
fn split_namespace(path: &str) -> (Option<String>, &str) {
    let quote = path.find('"').unwrap_or(path.len());
    match path[..quote].find(':') {
        Some(i) => (Some(path[..i].to_string()), &path[i + 1..]),
        None => (None, path),
    }
}

/// `Key=value,Key2=value2` → pairs; `None` if malformed.
fn parse_bindings(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    loop {
        let eq = s.find('=')?;
        let name = s[..eq].trim();
        if name.is_empty() {
            return None;
        }
        let (value, tail) = parse_value(&s[eq + 1..])?;
        out.push((name.to_string(), value));
        if tail.is_empty() {
            return Some(out);
        }
        s = tail.strip_prefix(',')?;
    }
}

/// A quoted string (with `\"` and `\\` escapes) or a bare token up to the next comma;
/// returns the value and what follows it.
fn parse_value(s: &str) -> Option<(String, &str)> {
    let Some(body) = s.strip_prefix('"') else {
        let end = s.find(',').unwrap_or(s.len());
        return Some((s[..end].to_string(), &s[end..]));
    };
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?.1),
            '"' => return Some((value, &body[i + 1..])),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_path_with_escapes() {
        let r = parse(r#"\\SRV\root\cimv2:Win32_Service.Name="a\"b,c",Id=5"#);
        assert_eq!(r.address.as_deref(), Some(r"\\SRV\root\cimv2"));
        assert_eq!(r.resource_uri, "Win32_Service");
        assert_eq!(r.selectors, vec![("Name".into(), "a\"b,c".into()), ("Id".into(), "5".into())]);
    }

    #[test]
    fn relative_singleton_and_unnamed() {
        let r = parse(r#"__EventFilter.Name="f:1""#);
        assert_eq!((r.address, r.resource_uri.as_str()), (None, "__EventFilter"));
        assert_eq!(r.selectors, vec![("Name".into(), "f:1".into())]);
        let s = parse("Win32_UTCTime=@");
        assert_eq!((s.resource_uri.as_str(), s.selectors.len()), ("Win32_UTCTime", 0));
        let u = parse(r#"Foo="x""#);
        assert_eq!(u.selectors, vec![(String::new(), "x".into())]);
    }

    #[test]
    fn malformed_paths_are_kept_whole() {
        for bad in [r#"A.B="unterminated"#, "A.=1", r#"A.B="x"junk"#, "A.B"] {
            let r = parse(bad);
            assert_eq!((r.address, r.resource_uri.as_str(), r.selectors.len()), (None, bad, 0), "{bad}");
        }
        assert_eq!(parse("").resource_uri, "");
    }
}
