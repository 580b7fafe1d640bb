//! RESP2: an incremental request parser that follows Redis 7's
//! `processMultibulkBuffer` and `processInlineBuffer` (the same error texts,
//! the same leniencies), and the reply encoders.
//!
//! The parser never allocates what a client merely declares: an array of
//! `*1048576` reserves room for at most [`ARGS_RESERVE_MAX`] arguments, and a
//! bulk of `$33554432` costs nothing until its bytes arrive.

use std::io::Write;

/// The longest inline request, or `*`/`$` count line, before Redis gives up
/// looking for its end (`PROTO_INLINE_MAX_SIZE`, 64 KiB, as in Redis).
pub const INLINE_MAX_BYTES: usize = 64 * 1024;
/// The largest bulk argument accepted. Redis's `proto-max-bulk-len` defaults
/// to 512 MiB; this server keeps 32 MiB so one client cannot make it hold
/// much. A larger declared length gets `invalid bulk length`.
pub const BULK_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// The most arguments one command may declare. Redis accepts up to
/// `INT_MAX`; this server stops at 2^20 with the same error,
/// `invalid multibulk length`.
pub const ARGS_MAX: u64 = 1024 * 1024;
/// The most argument slots reserved up front for a declared array, as in
/// Redis (`min(multibulklen, 1024)`): the rest grow as arguments arrive.
pub const ARGS_RESERVE_MAX: usize = 1024;

/// A malformed request: the connection gets `-ERR Protocol error: <text>`
/// and is closed once the replies before it are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

/// The arguments of one command, stored back to back.
#[derive(Debug, Default, Clone)]
pub struct Args {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Args {
    /// The number of arguments, the command name included.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no arguments (an empty request).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Argument `index` (0 is the command name).
    pub fn get(&self, index: usize) -> &[u8] {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.bytes[start..self.ends[index]]
    }

    /// Bytes held by the arguments parsed so far: they count towards the
    /// connection's query-buffer limit, as `argv_len_sum` does in Redis.
    pub fn bytes_held(&self) -> usize {
        self.bytes.len()
    }

    /// Arguments made of `parts` (a logged command, replayed).
    pub fn from_parts(parts: &[&[u8]]) -> Args {
        let mut args = Args::default();
        for part in parts {
            args.push(part);
        }
        args
    }

    /// Every argument, the name first.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|index| self.get(index))
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn push(&mut self, arg: &[u8]) {
        self.bytes.extend_from_slice(arg);
        self.ends.push(self.bytes.len());
    }
}

/// One connection's parser: where it is inside a multibulk request, and the
/// arguments read so far.
#[derive(Debug, Default)]
pub struct Parser {
    /// Arguments still to read in the current multibulk request; 0 between
    /// requests.
    args_remaining: u64,
    /// The declared length of the bulk being read, once its `$` line is in.
    bulk_len: Option<usize>,
    /// The request being assembled, complete when `parse` returns `Ok(true)`.
    pub args: Args,
}

impl Parser {
    /// Parses from `input[*position..]`. `Ok(true)`: a whole command is in
    /// `self.args` (maybe with no arguments: an empty request, to skip).
    /// `Ok(false)`: more input is needed; what was consumed is remembered.
    /// `*position` advances past everything consumed.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] with Redis's text.
    pub fn parse(&mut self, input: &[u8], position: &mut usize) -> Result<bool, ProtocolError> {
        if self.args_remaining == 0 {
            self.args.clear();
            if *position >= input.len() {
                return Ok(false);
            }
            if input[*position] != b'*' {
                return self.parse_inline(input, position);
            }
            match self.parse_multibulk_count(input, position)? {
                None => return Ok(false),
                Some(0) => return Ok(true),
                Some(count) => self.args_remaining = count,
            }
        }
        self.parse_bulks(input, position)
    }

    fn parse_multibulk_count(
        &mut self,
        input: &[u8],
        position: &mut usize,
    ) -> Result<Option<u64>, ProtocolError> {
        let Some(line_end) = find_line(input, *position, "too big mbulk count string")? else {
            return Ok(None);
        };
        let count = match string_to_i64(&input[*position + 1..line_end]) {
            Some(count) if count <= ARGS_MAX as i64 => count,
            _ => return Err(protocol_error("invalid multibulk length")),
        };
        *position = line_end + 2;
        if count <= 0 {
            return Ok(Some(0));
        }
        let count = count as u64;
        self.args
            .ends
            .reserve((count as usize).min(ARGS_RESERVE_MAX));
        Ok(Some(count))
    }

    fn parse_bulks(&mut self, input: &[u8], position: &mut usize) -> Result<bool, ProtocolError> {
        while self.args_remaining > 0 {
            let bulk_len = match self.bulk_len {
                Some(bulk_len) => bulk_len,
                None => {
                    let Some(line_end) = find_line(input, *position, "too big bulk count string")?
                    else {
                        return Ok(false);
                    };
                    if input[*position] != b'$' {
                        let got = char::from(input[*position]);
                        return Err(protocol_error(&format!("expected '$', got '{got}'")));
                    }
                    let bulk_len = match string_to_i64(&input[*position + 1..line_end]) {
                        Some(len) if len >= 0 && len as u64 <= BULK_MAX_BYTES => len as usize,
                        _ => return Err(protocol_error("invalid bulk length")),
                    };
                    *position = line_end + 2;
                    self.bulk_len = Some(bulk_len);
                    bulk_len
                }
            };
            // As in Redis, the two bytes after the bulk are skipped unchecked.
            if input.len() - *position < bulk_len + 2 {
                return Ok(false);
            }
            self.args.push(&input[*position..*position + bulk_len]);
            *position += bulk_len + 2;
            self.bulk_len = None;
            self.args_remaining -= 1;
        }
        Ok(true)
    }

    fn parse_inline(&mut self, input: &[u8], position: &mut usize) -> Result<bool, ProtocolError> {
        let rest = &input[*position..];
        let Some(newline) = rest.iter().position(|&byte| byte == b'\n') else {
            if rest.len() > INLINE_MAX_BYTES {
                return Err(protocol_error("too big inline request"));
            }
            return Ok(false);
        };
        let mut line = &rest[..newline];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        // Redis splits a C string: a NUL byte ends the line.
        if let Some(nul) = line.iter().position(|&byte| byte == 0) {
            line = &line[..nul];
        }
        if !split_args(line, &mut self.args) {
            return Err(protocol_error("unbalanced quotes in request"));
        }
        *position += newline + 1;
        Ok(true)
    }
}

fn protocol_error(text: &str) -> ProtocolError {
    ProtocolError(format!("Protocol error: {text}"))
}

/// Finds the `\r` that ends the line starting at `start`, as Redis does: the
/// byte after it is assumed to be `\n` and must be present. `Ok(None)` asks
/// for more input; a line longer than [`INLINE_MAX_BYTES`] is an error.
fn find_line(input: &[u8], start: usize, too_big: &str) -> Result<Option<usize>, ProtocolError> {
    let rest = &input[start..];
    match rest.iter().position(|&byte| byte == b'\r') {
        None if rest.len() > INLINE_MAX_BYTES => Err(protocol_error(too_big)),
        None => Ok(None),
        Some(offset) if offset + 2 > rest.len() => Ok(None),
        Some(offset) => Ok(Some(start + offset)),
    }
}

/// Redis's `string2ll`: an optional `-`, then digits with no leading zero
/// (a lone `0` aside), at most 20 bytes, within `i64`. No spaces, no `+`,
/// and `-0` is refused.
pub fn string_to_i64(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() >= 21 {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, text),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut value: u64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
    }
    if negative {
        if value > i64::MAX as u64 + 1 {
            return None;
        }
        Some((value as i64).wrapping_neg())
    } else {
        i64::try_from(value).ok()
    }
}

/// Redis's `sdssplitargs`: splits an inline request on blanks, with
/// `"double"` quotes (escapes `\n \r \t \b \a \xHH`, and `\c` for `c`) and
/// `'single'` quotes (only `\'`). A closing quote must be followed by a blank
/// or the end. Returns false for unbalanced quotes.
fn split_args(line: &[u8], args: &mut Args) -> bool {
    let at = |index: usize| line.get(index).copied().unwrap_or(0);
    let mut index = 0;
    let mut current = Vec::new();
    loop {
        while index < line.len() && is_space(line[index]) {
            index += 1;
        }
        if index >= line.len() {
            return true;
        }
        let (mut in_double, mut in_single, mut done) = (false, false, false);
        current.clear();
        while !done {
            let byte = at(index);
            if in_double {
                if byte == b'\\'
                    && at(index + 1) == b'x'
                    && is_hex(at(index + 2))
                    && is_hex(at(index + 3))
                {
                    current.push(hex_value(at(index + 2)) * 16 + hex_value(at(index + 3)));
                    index += 3;
                } else if byte == b'\\' && at(index + 1) != 0 {
                    index += 1;
                    current.push(match at(index) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if byte == b'"' {
                    if at(index + 1) != 0 && !is_space(at(index + 1)) {
                        return false;
                    }
                    done = true;
                } else if byte == 0 {
                    return false;
                } else {
                    current.push(byte);
                }
            } else if in_single {
                if byte == b'\\' && at(index + 1) == b'\'' {
                    index += 1;
                    current.push(b'\'');
                } else if byte == b'\'' {
                    if at(index + 1) != 0 && !is_space(at(index + 1)) {
                        return false;
                    }
                    done = true;
                } else if byte == 0 {
                    return false;
                } else {
                    current.push(byte);
                }
            } else {
                match byte {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    other => current.push(other),
                }
            }
            if at(index) != 0 {
                index += 1;
            }
        }
        args.push(&current);
    }
}

/// C's `isspace`: space, `\t`, `\n`, `\v`, `\f`, `\r`.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn is_hex(byte: u8) -> bool {
    byte.is_ascii_hexdigit()
}

fn hex_value(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        _ => byte - b'A' + 10,
    }
}

/// `+text\r\n`.
pub fn simple(out: &mut Vec<u8>, text: &str) {
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `-text\r\n`, with any `\r` or `\n` in `text` turned into spaces, as
/// Redis's `addReplyErrorFormat` does so the reply stays one line.
pub fn error(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'-');
    out.extend(text.iter().map(|&byte| match byte {
        b'\r' | b'\n' => b' ',
        other => other,
    }));
    out.extend_from_slice(b"\r\n");
}

/// Appends `prefix`, `value` in decimal, then CRLF: every length and
/// integer line. By hand rather than through `write!`, whose formatting
/// machinery was most of the time of an LRANGE reply (perf, 600 elements).
fn header(out: &mut Vec<u8>, prefix: u8, value: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.reserve(24);
    out.push(prefix);
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// `:n\r\n`.
pub fn integer(out: &mut Vec<u8>, value: i64) {
    header(out, b':', value);
}

/// `$len\r\nbytes\r\n`.
pub fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 16);
    header(out, b'$', bytes.len() as i64);
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// `$-1\r\n`: the null bulk string.
pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// `*-1\r\n`: the null array.
pub fn array_null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
}

/// `*count\r\n`: an array header; its elements follow.
pub fn array(out: &mut Vec<u8>, count: usize) {
    header(out, b'*', count as i64);
}

/// `%count\r\n` in RESP3, else an array of twice as many elements.
pub fn map(out: &mut Vec<u8>, count: usize, resp3: bool) {
    if resp3 {
        header(out, b'%', count as i64);
    } else {
        array(out, count * 2);
    }
}

/// `~count\r\n` in RESP3, else an array header.
pub fn set(out: &mut Vec<u8>, count: usize, resp3: bool) {
    if resp3 {
        header(out, b'~', count as i64);
    } else {
        array(out, count);
    }
}

/// RESP3's null, `_\r\n`; in RESP2 the null bulk string.
pub fn nil(out: &mut Vec<u8>, resp3: bool) {
    if resp3 {
        out.extend_from_slice(b"_\r\n");
    } else {
        null(out);
    }
}

/// RESP3's null, `_\r\n`; in RESP2 the null array.
pub fn nil_array(out: &mut Vec<u8>, resp3: bool) {
    if resp3 {
        out.extend_from_slice(b"_\r\n");
    } else {
        array_null(out);
    }
}

/// A double as Redis 7.0's `addReplyDouble` writes it: `%.17g`, as a RESP3
/// double or a RESP2 bulk string.
pub fn double(out: &mut Vec<u8>, value: f64, resp3: bool) {
    let text = format_g17(value);
    if resp3 {
        let _ = write!(out, ",{text}\r\n");
    } else {
        bulk(out, text.as_bytes());
    }
}

/// A verbatim string (`=len\r\ntxt:...`) in RESP3, as Redis replies INFO
/// and CLIENT LIST; a bulk string in RESP2.
pub fn verbatim(out: &mut Vec<u8>, text: &[u8], resp3: bool) {
    if resp3 {
        let _ = write!(out, "={}\r\ntxt:", text.len() + 4);
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    } else {
        bulk(out, text);
    }
}

/// C's `%.17g` (with "inf" and "-inf" as Redis spells them): 17
/// significant digits, trailing zeros dropped, an exponent below 1e-4 or
/// from 1e17.
pub fn format_g17(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let scientific = format!("{value:.16e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("an exponent");
    let exponent: i32 = exponent.parse().expect("a decimal exponent");
    if !(-4..17).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        let mantissa = strip_fraction_zeros(mantissa);
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let decimals = (16 - exponent) as usize;
    strip_fraction_zeros(&format!("{value:.decimals$}")).to_string()
}

fn strip_fraction_zeros(text: &str) -> &str {
    if !text.contains('.') {
        return text;
    }
    text.trim_end_matches('0').trim_end_matches('.')
}

/// Redis's `string2d` (scores, CONFIG values): a decimal or `inf`, no
/// blanks, never NaN.
pub fn parse_double(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    let first = text.bytes().next()?;
    if first.is_ascii_whitespace() || text.ends_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    (!value.is_nan()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_print_decimal() {
        let mut out = Vec::new();
        integer(&mut out, i64::MIN);
        integer(&mut out, 0);
        bulk(&mut out, b"ab");
        array(&mut out, 1234);
        assert_eq!(out, b":-9223372036854775808\r\n:0\r\n$2\r\nab\r\n*1234\r\n");
    }

    #[test]
    fn doubles_print_as_percent_17g() {
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(1.5), "1.5");
        assert_eq!(format_g17(3.0), "3");
        assert_eq!(format_g17(1e17), "1e+17");
        assert_eq!(format_g17(12345678901234567.0), "12345678901234568");
        assert_eq!(format_g17(0.0001), "0.0001");
        assert_eq!(format_g17(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_g17(-2.5), "-2.5");
        assert_eq!(format_g17(f64::INFINITY), "inf");
    }

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut parser = Parser::default();
        let mut position = 0;
        let mut commands = Vec::new();
        while parser.parse(input, &mut position)? {
            let args = &parser.args;
            commands.push(
                (0..args.len())
                    .map(|index| args.get(index).to_vec())
                    .collect(),
            );
        }
        Ok(commands)
    }

    #[test]
    fn a_command_fed_one_byte_at_a_time_parses_once_whole() {
        let request = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut parser = Parser::default();
        let mut input = Vec::new();
        let mut position = 0;
        for (index, &byte) in request.iter().enumerate() {
            input.push(byte);
            let done = parser.parse(&input, &mut position).unwrap();
            assert_eq!(done, index == request.len() - 1, "after byte {index}");
        }
        assert_eq!(parser.args.len(), 3);
        assert_eq!(parser.args.get(2), b"hello");
    }

    #[test]
    fn declared_lengths_reserve_nothing_beyond_the_cap() {
        let mut parser = Parser::default();
        let mut position = 0;
        let input = b"*1048576\r\n$33554432\r\nabc";
        assert!(!parser.parse(input, &mut position).unwrap());
        assert!(parser.args.ends.capacity() <= ARGS_RESERVE_MAX);
        assert!(parser.args.bytes.capacity() < 1024);
        let too_many = parse_all(b"*1048577\r\n").unwrap_err();
        assert_eq!(too_many.0, "Protocol error: invalid multibulk length");
        let too_long = parse_all(b"*1\r\n$33554433\r\n").unwrap_err();
        assert_eq!(too_long.0, "Protocol error: invalid bulk length");
    }

    #[test]
    fn inline_requests_split_like_sdssplitargs() {
        let commands = parse_all(b"set k \"a\\x41\\n\" 'it\\'s'\r\n\r\nPING\n").unwrap();
        let expected: Vec<Vec<Vec<u8>>> = vec![
            vec![
                b"set".to_vec(),
                b"k".to_vec(),
                b"aA\n".to_vec(),
                b"it's".to_vec(),
            ],
            vec![],
            vec![b"PING".to_vec()],
        ];
        assert_eq!(commands, expected);
        let error = parse_all(b"get \"a\"b\r\n").unwrap_err();
        assert_eq!(error.0, "Protocol error: unbalanced quotes in request");
    }

    #[test]
    fn string_to_i64_matches_redis() {
        assert_eq!(string_to_i64(b"0"), Some(0));
        assert_eq!(string_to_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(string_to_i64(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b"-0"[..],
            b"012",
            b"+1",
            b" 1",
            b"1 ",
            b"",
            b"-",
            b"9223372036854775808",
        ] {
            assert_eq!(string_to_i64(bad), None, "{bad:?}");
        }
    }
}
