//! Text extraction for the full-text index: plain text, code and Markdown as they are, HTML
//! without its markup, PDF through `pdf-extract`. At most [`MAX_TEXT`] bytes are kept per file.

use crate::filetype::ContentKind;

/// The most text kept per content, in bytes.
pub const MAX_TEXT: usize = 1 << 20;
/// The largest PDF read for its text.
pub const MAX_PDF: u64 = 64 << 20;

/// Why no text came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    Unsupported(String),
    Failed(String),
}

/// How a content of this kind, MIME type and extension (lowercase) is read, if at all.
pub fn reader_for(kind: ContentKind, mime: Option<&str>, ext: &str) -> Option<Reader> {
    let mime = mime.unwrap_or("");
    if mime == "application/pdf" {
        Some(Reader::Pdf)
    } else if mime == "text/html" || matches!(ext, "html" | "htm" | "xhtml") {
        Some(Reader::Html)
    } else if matches!(kind, ContentKind::Text | ContentKind::Code) {
        Some(Reader::Plain)
    } else {
        None
    }
}

/// How a content's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Plain,
    Html,
    Pdf,
}

/// Text of `bytes` (the first [`MAX_TEXT`] of a text file, or a whole PDF) read as `how`.
pub fn extract(bytes: &[u8], how: Reader) -> Result<String, TextError> {
    let text = match how {
        Reader::Plain => plain(bytes)?,
        Reader::Html => html(&plain(bytes)?),
        Reader::Pdf => pdf(bytes)?,
    };
    Ok(cap(text))
}

fn plain(bytes: &[u8]) -> Result<String, TextError> {
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return Err(TextError::Unsupported(
            "binary content (NUL bytes), not text".into(),
        ));
    }
    Ok(String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_TEXT)]).into_owned())
}

fn pdf(bytes: &[u8]) -> Result<String, TextError> {
    if !bytes.starts_with(b"%PDF")
        && !bytes[..bytes.len().min(1024)]
            .windows(4)
            .any(|w| w == b"%PDF")
    {
        return Err(TextError::Failed("not a PDF (no %PDF header)".into()));
    }
    pdf_extract::extract_text_from_mem(bytes).map_err(|e| TextError::Failed(format!("PDF: {e}")))
}

/// Cuts `text` to at most [`MAX_TEXT`] bytes at a character boundary.
fn cap(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The text of an HTML document: tags, comments, scripts and styles left out, the common
/// entities decoded, block elements separated by spaces.
pub fn html(src: &str) -> String {
    let mut out = String::with_capacity(src.len() / 2);
    let lower = src.to_ascii_lowercase();
    let mut i = 0;
    let b = src.as_bytes();
    while i < b.len() {
        if b[i] == b'<' {
            if lower[i..].starts_with("<!--") {
                i = lower[i..].find("-->").map_or(b.len(), |e| i + e + 3);
                continue;
            }
            let skip_to = ["script", "style"].iter().find_map(|t| {
                let open = format!("<{t}");
                lower[i..].starts_with(&open).then(|| {
                    let close = format!("</{t}");
                    lower[i..].find(&close).map_or(b.len(), |e| {
                        let at = i + e;
                        lower[at..].find('>').map_or(b.len(), |g| at + g + 1)
                    })
                })
            });
            if let Some(to) = skip_to {
                i = to;
                out.push(' ');
                continue;
            }
            i = lower[i..].find('>').map_or(b.len(), |g| i + g + 1);
            out.push(' ');
            continue;
        }
        if b[i] == b'&'
            && let Some(semi) = src[i..].find(';').filter(|s| *s <= 10)
        {
            let name = &src[i + 1..i + semi];
            let decoded = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                    .ok()
                    .and_then(char::from_u32),
                n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            if let Some(c) = decoded {
                out.push(c);
                i += semi + 1;
                continue;
            }
        }
        let c = src[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    // Collapse runs of whitespace the markup left.
    let mut collapsed = String::with_capacity(out.len());
    let mut space = false;
    for c in out.chars() {
        if c.is_whitespace() {
            if !space && !collapsed.is_empty() {
                collapsed.push(' ');
            }
            space = true;
        } else {
            collapsed.push(c);
            space = false;
        }
    }
    collapsed.trim_end().to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid PDF with one page showing `text` (Helvetica), cross-reference table and
    /// all, written by hand.
    pub(crate) fn pdf_with(text: &str) -> Vec<u8> {
        let stream = format!("BT /F1 12 Tf 72 712 Td ({text}) Tj ET");
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
            format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
                .to_owned(),
        ];
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
        for off in offsets {
            out.extend(format!("{off:010} 00000 n \n").as_bytes());
        }
        out.extend(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        out
    }

    #[test]
    fn html_loses_its_markup() {
        let h = "<html><head><style>p{color:red}</style><script>var x = '<b>';</script></head>\
                 <body><!-- hidden --><h1>Quarterly&nbsp;revenue</h1><p>up &amp; away &#233;&#x41;</p></body></html>";
        assert_eq!(html(h), "Quarterly revenue up & away éA");
    }

    #[test]
    fn text_is_capped_and_binary_refused() {
        let big = "é".repeat(MAX_TEXT);
        let t = extract(big.as_bytes(), Reader::Plain).unwrap();
        assert!(t.len() <= MAX_TEXT && t.len() > MAX_TEXT - 2);
        assert!(matches!(
            extract(b"\x00\x01binary", Reader::Plain),
            Err(TextError::Unsupported(_))
        ));
    }

    #[test]
    fn pdf_text_is_extracted_and_damage_reported() {
        let t = extract(&pdf_with("quarterly revenue grew"), Reader::Pdf).unwrap();
        assert!(t.contains("quarterly revenue grew"), "{t:?}");
        assert!(matches!(
            extract(b"%PDF-1.4\ngarbage", Reader::Pdf),
            Err(TextError::Failed(_))
        ));
    }
}
