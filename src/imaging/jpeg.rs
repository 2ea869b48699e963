//! JPEG decoding at a reduced DCT scale: a large film read at 1/8 or 1/4 of its size,
//! without decoding the pixels the model never reads.
//!
//! A 4-megapixel film is read at 192 px. The full decode spends most of its time on work
//! that the resize then throws away: the inverse DCT of every 8x8 block, chroma upsampling
//! and colour conversion. Here each block is entropy-decoded (that cannot be skipped: the
//! bit position of the next block depends on it) and only what the reduced film needs is
//! computed from its coefficients:
//!
//! - at 1/8, one pixel per block: the DC coefficient, which is exactly the block's mean;
//! - at 1/4, four pixels per block: the means of its four 4x4 quadrants, computed exactly
//!   from the coefficients whose basis functions do not average to zero over a quadrant
//!   (horizontal and vertical frequency each 0 or odd).
//!
//! So the reduced film is the full decode box-averaged by 8 or by 4 (up to clamping of
//! saturated pixels), which is what the resize did to the full decode anyway. Only the luma
//! component is decoded to pixels; the chroma's DC coefficients say whether the film is in
//! colour ([`super::preprocess::InputWarning::Colour`]).
//!
//! What this reads: 8-bit Huffman-coded JPEGs, sequential (baseline or extended) and
//! progressive (at 1/8 only: the DC scans; the AC scans are skipped unread), with one
//! (gray) or three (YCbCr) components and any sampling factors where luma has the highest.
//! Anything else (arithmetic coding, 12-bit, lossless, CMYK, RGB-coded, a DNL marker) and
//! any damage it meets (a bad Huffman code, a scan that runs short, a restart marker out of
//! place) is [`Unsupported`]: the caller then decodes the file in full as it always did,
//! so a damaged or unusual file gets exactly the answer the full decoder gives it.

use image::GrayImage;

/// Why the reduced decode declined a file; the full decoder then reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported(pub &'static str);

type Result<T> = std::result::Result<T, Unsupported>;

/// A film decoded at reduced scale.
#[derive(Debug, Clone)]
pub struct Reduced {
    /// The luma at 1/8: one pixel per 8x8 block, `ceil(w / 8)` x `ceil(h / 8)`.
    pub eighth: GrayImage,
    /// The luma at 1/4, `ceil(w / 4)` x `ceil(h / 4)`, when asked for and the file is
    /// sequential.
    pub quarter: Option<GrayImage>,
    /// Whether the film is in colour, by the same test as a fully decoded image's (more
    /// than a tenth of sampled pixels with channels over 32 levels apart) on its 1/8 RGB;
    /// always false for one component.
    pub colour: bool,
}

/// The zigzag order: `NATURAL[k]` is the row-major index of the `k`-th coefficient.
const NATURAL: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Bits looked up at once in a Huffman table; longer codes take the slow path.
const LOOKUP: u32 = 10;

/// A Huffman table: a direct lookup for codes up to [`LOOKUP`] bits, canonical decoding
/// beyond.
#[derive(Clone)]
struct Huffman {
    /// `(length << 8) | symbol` for each `LOOKUP`-bit prefix; 0 for a longer code.
    fast: Box<[u16; 1 << LOOKUP]>,
    /// The largest code of each length (1..=16), left-aligned to 16 bits, exclusive: a
    /// 16-bit prefix below `max16[l]` has a code of at most `l` bits.
    max16: [u32; 17],
    /// For each length, the symbol index of its first code minus that code.
    offset: [i32; 17],
    symbols: Vec<u8>,
    /// For an AC table: what the next [`GROUP`] bits hold when they hold whole
    /// coefficients (code and extra bits), as [`Group`]; 0 when the first does not fit.
    group: Box<[u16; 1 << GROUP]>,
}

/// Bits looked up at once to skip several AC coefficients in one step (12 and 14 measured
/// 5-10% slower on the bench films).
const GROUP: u32 = 13;

/// One entry of [`Huffman::group`] (16 KB a table): `bits | advance << 5 | eob << 12`. `bits` is what the
/// coefficients take, `advance` how far they move the position in the block (a run of
/// zeros and the coefficient, or 16 for a run of sixteen zeros), and `eob` whether the
/// last of them is the end of the block.
struct Group;

impl Group {
    #[inline(always)]
    fn unpack(e: u16) -> (u32, u32, bool) {
        let e = u32::from(e);
        (e & 0x1F, (e >> 5) & 0x7F, e >> 12 != 0)
    }
}

impl Huffman {
    fn new(counts: &[u8; 16], symbols: &[u8]) -> Result<Self> {
        let mut fast = Box::new([0u16; 1 << LOOKUP]);
        let mut max16 = [0u32; 17];
        let mut offset = [0i32; 17];
        let mut code = 0u32;
        let mut k = 0usize;
        for len in 1..=16u32 {
            let n = u32::from(counts[len as usize - 1]);
            offset[len as usize] = k as i32 - code as i32;
            for _ in 0..n {
                if len <= LOOKUP {
                    let shift = LOOKUP - len;
                    let first = (code << shift) as usize;
                    let entry = ((len as u16) << 8) | u16::from(symbols[k]);
                    fast.get_mut(first..first + (1 << shift))
                        .ok_or(Unsupported("Huffman table overfull"))?
                        .fill(entry);
                }
                code += 1;
                k += 1;
            }
            if code > (1 << len) {
                return Err(Unsupported("Huffman table overfull"));
            }
            max16[len as usize] = code << (16 - len);
            code <<= 1;
        }
        let mut table = Huffman {
            fast,
            max16,
            offset,
            symbols: symbols.to_vec(),
            group: Box::new([0u16; 1 << GROUP]),
        };
        table.build_groups();
        Ok(table)
    }

    /// Fills [`Huffman::group`] from [`Huffman::fast`].
    fn build_groups(&mut self) {
        for prefix in 0..1u32 << GROUP {
            let (mut used, mut advance, mut eob) = (0u32, 0u32, false);
            while used < GROUP {
                let window = (prefix << used) & ((1 << GROUP) - 1);
                let entry = self.fast[(window >> (GROUP - LOOKUP)) as usize];
                let len = u32::from(entry >> 8);
                let (run, size) = (u32::from((entry & 0xFF) >> 4), u32::from(entry & 15));
                if entry == 0 || used + len + size > GROUP || size > 10 {
                    break;
                }
                used += len + size;
                if size == 0 && run != 15 {
                    eob = true;
                    break;
                }
                advance += if size == 0 { 16 } else { run + 1 };
                if advance >= 64 {
                    break;
                }
            }
            if used > 0 {
                self.group[prefix as usize] = (used | advance << 5 | u32::from(eob) << 12) as u16;
            }
        }
    }

    /// The next symbol; `bits` holds at least 16 valid bits.
    #[inline(always)]
    fn decode(&self, bits: &mut Bits) -> Result<u8> {
        let entry = self.fast[(bits.acc >> (64 - LOOKUP)) as usize & ((1 << LOOKUP) - 1)];
        if entry != 0 {
            bits.consume(u32::from(entry >> 8));
            return Ok(entry as u8);
        }
        self.decode_long(bits)
    }

    /// [`Huffman::decode`] for a code longer than [`LOOKUP`] bits (or none).
    #[cold]
    fn decode_long(&self, bits: &mut Bits) -> Result<u8> {
        let top = (bits.acc >> 48) as u32;
        for len in LOOKUP + 1..=16 {
            if top < self.max16[len as usize] {
                let code = (top >> (16 - len)) as i32;
                let at = code + self.offset[len as usize];
                bits.consume(len);
                return usize::try_from(at)
                    .ok()
                    .and_then(|i| self.symbols.get(i).copied())
                    .ok_or(Unsupported("bad Huffman code"));
            }
        }
        Err(Unsupported("bad Huffman code"))
    }
}

/// The entropy-coded data of one scan, most significant bit first.
///
/// Refilling stops at a marker (an `FF` not followed by `00`) and feeds zero bits past it;
/// [`Bits::overran`] says whether any of those were consumed, which means the scan ran short.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    /// Valid bits at the top of `acc` (may include fed zeros).
    count: u32,
    /// Zero bits fed past the end of the data.
    fed: u32,
    at_marker: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Bits {
            data,
            pos,
            acc: 0,
            count: 0,
            fed: 0,
            at_marker: false,
        }
    }

    /// Ensures at least 32 valid bits: enough for one coefficient (a code of at most 16
    /// bits and at most 11 extra bits).
    #[inline(always)]
    fn fill(&mut self) {
        if self.count >= 32 {
            return;
        }
        // The fast path: eight bytes with no 0xFF among them (no stuffing, no marker).
        if let (false, Some(word)) = (self.at_marker, self.data.get(self.pos..self.pos + 8)) {
            // A reference cast, not a copy: the array conversion of a slice is a call per
            // refill where this is a load.
            let w = match <&[u8; 8]>::try_from(word) {
                Ok(w) => u64::from_be_bytes(*w),
                Err(_) => u64::MAX,
            };
            let inv = !w;
            let has_ff = inv.wrapping_sub(0x0101_0101_0101_0101) & !inv & 0x8080_8080_8080_8080;
            if has_ff == 0 {
                // Branchless refill: the bits past the whole bytes taken are the next
                // byte's own, so the next refill ORs the same bits in again.
                self.acc |= w >> self.count;
                self.pos += ((63 - self.count) >> 3) as usize;
                self.count |= 56;
                return;
            }
        }
        self.fill_slow();
    }

    #[cold]
    fn fill_slow(&mut self) {
        while self.count <= 56 {
            let byte = if self.at_marker {
                None
            } else {
                match self.data.get(self.pos).copied() {
                    Some(0xFF) => match self.data.get(self.pos + 1).copied() {
                        Some(0x00) => {
                            self.pos += 2;
                            Some(0xFF)
                        }
                        _ => None,
                    },
                    Some(b) => {
                        self.pos += 1;
                        Some(b)
                    }
                    None => None,
                }
            };
            match byte {
                Some(b) => self.acc |= u64::from(b) << (56 - self.count),
                None => {
                    self.at_marker = true;
                    self.fed += 8;
                }
            }
            self.count += 8;
        }
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.count -= n;
    }

    /// The next `n` bits (0..=16) as an unsigned number.
    #[inline(always)]
    fn take(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let v = (self.acc >> (64 - n)) as u32;
        self.consume(n);
        v
    }

    /// Whether zero bits fed past the data were consumed.
    fn overran(&self) -> bool {
        self.fed > self.count
    }

    /// Drops the padding bits up to the next marker; fails unless at most the bits of one
    /// partial byte (the encoder's padding) were left.
    fn finish(&mut self) -> Result<usize> {
        if self.overran() {
            return Err(Unsupported("scan ran short"));
        }
        if self.count - self.fed.min(self.count) >= 8 {
            return Err(Unsupported("entropy data left over"));
        }
        Ok(self.pos)
    }
}

/// The value of a coefficient coded as `s` extra bits.
#[inline(always)]
fn extend(v: u32, s: u32) -> i32 {
    if s == 0 {
        0
    } else if v < (1 << (s - 1)) {
        v as i32 - (1 << s) + 1
    } else {
        v as i32
    }
}

#[derive(Clone, Copy)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Blocks a row and rows of blocks, padded to whole MCUs.
    bw: usize,
    bh: usize,
    /// Blocks a row and rows of blocks that hold image data (a non-interleaved scan's grid).
    real_w: usize,
    real_h: usize,
}

/// The quadrant weights of each coefficient (zigzag order), dequantisation included: the
/// mean of quadrant `(i, j)` (row, column) of a block is the DC term plus
/// `sum_k coef[k] * w[k][2 * i + j]`.
fn quadrant_weights(quant: &[u16; 64]) -> ([[f32; 4]; 64], u64) {
    // a[u][half]: the mean over x in the half of C(u)/2 cos((2x+1) u pi / 16).
    let mut a = [[0f64; 2]; 8];
    for (u, au) in a.iter_mut().enumerate() {
        let c = if u == 0 {
            std::f64::consts::FRAC_1_SQRT_2
        } else {
            1.0
        };
        for (half, value) in au.iter_mut().enumerate() {
            let sum: f64 = (0..4)
                .map(|x| {
                    let x = (half * 4 + x) as f64;
                    ((2.0 * x + 1.0) * u as f64 * std::f64::consts::PI / 16.0).cos()
                })
                .sum();
            *value = c / 2.0 * sum / 4.0;
        }
    }
    let mut w = [[0f32; 4]; 64];
    let mut mask = 0u64;
    for k in 1..64 {
        let (v, u) = (NATURAL[k] / 8, NATURAL[k] % 8);
        let q = f64::from(quant[k]);
        let mut any = false;
        for i in 0..2 {
            for j in 0..2 {
                let x = q * a[v][i] * a[u][j];
                if x.abs() > 1e-9 {
                    any = true;
                }
                w[k][2 * i + j] = x as f32;
            }
        }
        if any {
            mask |= 1 << k;
        }
    }
    (w, mask)
}

/// What the entropy decoding keeps of each block.
struct Planes {
    /// The DC coefficient (quantised) of each block of each component.
    dc: Vec<Vec<i32>>,
    /// The quadrant means of each luma block (sequential files, when asked for).
    quarter: Option<Vec<[f32; 4]>>,
    quarter_weights: Box<([[f32; 4]; 64], u64)>,
}

/// Decodes `bytes` at 1/8 (and at 1/4 when `want_quarter`); [`Unsupported`] for what this
/// reader does not handle or any damage.
pub fn decode_reduced(bytes: &[u8], want_quarter: bool) -> Result<Reduced> {
    let mut r = Reader {
        data: bytes,
        pos: 0,
    };
    if r.u8()? != 0xFF || r.u8()? != 0xD8 {
        return Err(Unsupported("no SOI"));
    }
    let mut quant = [[0u16; 64]; 4];
    let mut quant_seen = [false; 4];
    let mut dc_tables: [Option<Huffman>; 4] = Default::default();
    let mut ac_tables: [Option<Huffman>; 4] = Default::default();
    let mut restart = 0usize;
    let mut frame: Option<(usize, usize, bool, Vec<Component>)> = None;
    let mut planes: Option<Planes> = None;
    let mut adobe_rgb = false;
    let mut y_quant: Option<[u16; 64]> = None;
    let mut chroma_quant: [Option<[u16; 64]>; 3] = [None; 3];
    let mut dc_done = 0u32;
    loop {
        let marker = r.marker()?;
        match marker {
            0xD9 => break,
            0xC0..=0xC2 => {
                if frame.is_some() {
                    return Err(Unsupported("two frames"));
                }
                let mut s = r.segment_reader()?;
                if s.u8()? != 8 {
                    return Err(Unsupported("not 8-bit"));
                }
                let h = usize::from(s.u16()?);
                let w = usize::from(s.u16()?);
                let nf = usize::from(s.u8()?);
                if w == 0 || h == 0 {
                    return Err(Unsupported("zero or DNL height"));
                }
                if nf != 1 && nf != 3 {
                    return Err(Unsupported("not gray or YCbCr"));
                }
                let mut comps = Vec::with_capacity(nf);
                for _ in 0..nf {
                    let id = s.u8()?;
                    let hv = s.u8()?;
                    let tq = usize::from(s.u8()?);
                    let (ch, cv) = (usize::from(hv >> 4), usize::from(hv & 15));
                    if !(1..=4).contains(&ch) || !(1..=4).contains(&cv) || tq > 3 {
                        return Err(Unsupported("bad component"));
                    }
                    comps.push(Component {
                        id,
                        h: ch,
                        v: cv,
                        tq,
                        bw: 0,
                        bh: 0,
                        real_w: 0,
                        real_h: 0,
                    });
                }
                if nf == 1 {
                    // A single component is one block per MCU, whatever its factors say.
                    comps[0].h = 1;
                    comps[0].v = 1;
                }
                if nf == 3 && comps.iter().map(|c| c.id).eq(*b"RGB") {
                    adobe_rgb = true;
                }
                let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
                let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
                if comps[0].h != hmax || comps[0].v != vmax {
                    return Err(Unsupported("luma is not the finest component"));
                }
                let (mcux, mcuy) = (w.div_ceil(8 * hmax), h.div_ceil(8 * vmax));
                for c in &mut comps {
                    c.bw = mcux * c.h;
                    c.bh = mcuy * c.v;
                    c.real_w = (w * c.h).div_ceil(hmax).div_ceil(8);
                    c.real_h = (h * c.v).div_ceil(vmax).div_ceil(8);
                }
                let progressive = marker == 0xC2;
                let quarter = (want_quarter && !progressive)
                    .then(|| vec![[0f32; 4]; comps[0].bw * comps[0].bh]);
                planes = Some(Planes {
                    dc: comps.iter().map(|c| vec![0i32; c.bw * c.bh]).collect(),
                    quarter,
                    quarter_weights: Box::new(([[0f32; 4]; 64], 0)),
                });
                frame = Some((w, h, progressive, comps));
            }
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(Unsupported("lossless, hierarchical or arithmetic-coded"));
            }
            0xC4 => {
                let mut s = r.segment_reader()?;
                while !s.at_end() {
                    let tc_th = s.u8()?;
                    let (class, id) = (tc_th >> 4, usize::from(tc_th & 15));
                    if class > 1 || id > 3 {
                        return Err(Unsupported("bad Huffman table id"));
                    }
                    let mut counts = [0u8; 16];
                    for c in &mut counts {
                        *c = s.u8()?;
                    }
                    let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    let symbols = s.take(n)?;
                    let table = Some(Huffman::new(&counts, symbols)?);
                    if class == 0 {
                        dc_tables[id] = table;
                    } else {
                        ac_tables[id] = table;
                    }
                }
            }
            0xDB => {
                let mut s = r.segment_reader()?;
                while !s.at_end() {
                    let pq_tq = s.u8()?;
                    let (wide, id) = (pq_tq >> 4, usize::from(pq_tq & 15));
                    if wide > 1 || id > 3 {
                        return Err(Unsupported("bad quantisation table"));
                    }
                    for q in quant[id].iter_mut() {
                        *q = if wide == 1 {
                            s.u16()?
                        } else {
                            u16::from(s.u8()?)
                        };
                    }
                    quant_seen[id] = true;
                }
            }
            0xDD => {
                let mut s = r.segment_reader()?;
                restart = usize::from(s.u16()?);
            }
            0xEE => {
                let seg = r.segment()?;
                // Adobe's APP14: transform 0 means the three components are R, G, B.
                if seg.len() >= 12 && seg.starts_with(b"Adobe") && seg[11] == 0 {
                    adobe_rgb = true;
                }
            }
            0xE0..=0xEF | 0xFE => {
                r.segment()?;
            }
            0xDA => {
                let (_, _, progressive, comps) =
                    frame.as_ref().ok_or(Unsupported("scan before frame"))?;
                let planes = planes.as_mut().ok_or(Unsupported("scan before frame"))?;
                if adobe_rgb && comps.len() == 3 {
                    return Err(Unsupported("RGB-coded"));
                }
                let mut s = r.segment_reader()?;
                let ns = usize::from(s.u8()?);
                if ns == 0 || ns > 4 {
                    return Err(Unsupported("bad scan"));
                }
                let mut scan = Vec::with_capacity(ns);
                for _ in 0..ns {
                    let id = s.u8()?;
                    let tables = s.u8()?;
                    let ci = comps
                        .iter()
                        .position(|c| c.id == id)
                        .ok_or(Unsupported("scan names no component"))?;
                    if scan.iter().any(|&(c, _, _)| c == ci) {
                        return Err(Unsupported("component twice in a scan"));
                    }
                    scan.push((ci, usize::from(tables >> 4), usize::from(tables & 15)));
                }
                let (ss, se, ahal) = (s.u8()?, s.u8()?, s.u8()?);
                let (ah, al) = (ahal >> 4, ahal & 15);
                for &(ci, _, _) in &scan {
                    let tq = comps[ci].tq;
                    if !quant_seen[tq] {
                        return Err(Unsupported("no quantisation table"));
                    }
                    if ci == 0 && y_quant.is_none() {
                        y_quant = Some(quant[tq]);
                    } else if ci > 0 && chroma_quant[ci].is_none() {
                        chroma_quant[ci] = Some(quant[tq]);
                    }
                }
                // The kind of scan, or `None` for a progressive AC scan: not needed at 1/8,
                // skipped unread to the next marker that is not a restart marker.
                let kind = if !*progressive {
                    if ss != 0 || se != 63 || ah != 0 || al != 0 {
                        return Err(Unsupported("bad sequential scan"));
                    }
                    if scan.iter().any(|&(ci, _, _)| ci == 0) && planes.quarter.is_some() {
                        *planes.quarter_weights = quadrant_weights(&quant[comps[0].tq]);
                    }
                    Some(ScanKind::Sequential)
                } else if ss == 0 {
                    if se != 0 || al > 13 {
                        return Err(Unsupported("bad DC scan"));
                    }
                    Some(if ah == 0 {
                        ScanKind::DcFirst(al)
                    } else {
                        ScanKind::DcRefine(al)
                    })
                } else {
                    if ns != 1 || se < ss || se > 63 {
                        return Err(Unsupported("bad AC scan"));
                    }
                    None
                };
                let end = match kind {
                    Some(kind) => {
                        if matches!(kind, ScanKind::Sequential | ScanKind::DcFirst(_)) {
                            dc_done |= scan.iter().fold(0, |m, &(ci, _, _)| m | (1 << ci));
                        }
                        let job = ScanJob {
                            comps,
                            scan: &scan,
                            dc_tables: &dc_tables,
                            ac_tables: &ac_tables,
                            restart,
                            kind,
                        };
                        job.run(bytes, r.pos, planes)?
                    }
                    None => skip_entropy(bytes, r.pos),
                };
                r.pos = end;
            }
            _ => return Err(Unsupported("unexpected marker")),
        }
    }
    let (w, h, _, comps) = frame.ok_or(Unsupported("no frame"))?;
    let planes = planes.ok_or(Unsupported("no frame"))?;
    if dc_done & ((1 << comps.len()) - 1) != (1 << comps.len()) - 1 {
        return Err(Unsupported("a component has no scan"));
    }
    let yq = y_quant.ok_or(Unsupported("no luma scan"))?;
    let y = &comps[0];
    let (ew, eh) = (w.div_ceil(8), h.div_ceil(8));
    let ydc = &planes.dc[0];
    let q0 = f32::from(yq[0]);
    // The block mean, rounded half up, offset to 0..=255. Integer arithmetic: `round` is a
    // libm call per block.
    let qi = i32::from(yq[0]);
    let level =
        |dc: i32| ((dc.saturating_mul(qi).saturating_add(4) >> 3) + 128).clamp(0, 255) as u8;
    let mut eighth = Vec::with_capacity(ew * eh);
    for by in 0..eh {
        eighth.extend(ydc[by * y.bw..by * y.bw + ew].iter().map(|&d| level(d)));
    }
    let colour = comps.len() == 3 && {
        let cq: Vec<f32> = (1..3)
            .map(|ci| chroma_quant[ci].map_or(1.0, |q| f32::from(q[0])))
            .collect();
        let mut seen = 0u32;
        let mut colourful = 0u32;
        let step = ((ew * eh / 16_384) as f64).sqrt().max(1.0) as usize;
        for by in (0..eh).step_by(step) {
            for bx in (0..ew).step_by(step) {
                let yv = f32::from(eighth[by * ew + bx]);
                let chroma = |ci: usize| {
                    let c = &comps[ci];
                    let (cx, cy) = (bx * c.h / y.h, by * c.v / y.v);
                    planes.dc[ci][cy * c.bw + cx] as f32 * cq[ci - 1] / 8.0
                };
                let (cb, cr) = (chroma(1), chroma(2));
                let level = |v: f32| (v + 0.5).clamp(0.0, 255.0) as u8;
                let rgb = [
                    level(yv + 1.402 * cr),
                    level(yv - 0.344_136 * cb - 0.714_136 * cr),
                    level(yv + 1.772 * cb),
                ];
                seen += 1;
                if super::preprocess::is_colourful(rgb) {
                    colourful += 1;
                }
            }
        }
        super::preprocess::mostly_colourful(colourful, seen)
    };
    let quarter = planes.quarter.map(|quads| {
        let (qw, qh) = (w.div_ceil(4), h.div_ceil(4));
        let mut out = vec![0u8; qw * qh];
        for (y4, row) in out.chunks_exact_mut(qw).enumerate() {
            let (by, i) = (y4 / 2, y4 % 2);
            for (x4, px) in row.iter_mut().enumerate() {
                let (bx, j) = (x4 / 2, x4 % 2);
                let b = by * y.bw + bx;
                let mean = ydc[b] as f32 * q0 / 8.0 + quads[b][2 * i + j];
                *px = (mean + 128.5).clamp(0.0, 255.0) as u8;
            }
        }
        GrayImage::from_raw(qw as u32, qh as u32, out)
    });
    Ok(Reduced {
        eighth: GrayImage::from_raw(ew as u32, eh as u32, eighth).ok_or(Unsupported("size"))?,
        quarter: quarter.flatten(),
        colour,
    })
}

/// Where the entropy-coded data starting at `from` ends: the next marker that is not a
/// restart marker (or the end of the data).
fn skip_entropy(bytes: &[u8], mut from: usize) -> usize {
    while let Some(i) = bytes
        .get(from..)
        .and_then(|s| s.iter().position(|&b| b == 0xFF))
    {
        let at = from + i;
        match bytes.get(at + 1) {
            Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => from = at + 1,
            _ => return at,
        }
    }
    bytes.len()
}

#[derive(Clone, Copy)]
enum ScanKind {
    Sequential,
    DcFirst(u8),
    DcRefine(u8),
}

struct ScanJob<'a> {
    comps: &'a [Component],
    /// (component index, DC table, AC table) in scan order.
    scan: &'a [(usize, usize, usize)],
    dc_tables: &'a [Option<Huffman>; 4],
    ac_tables: &'a [Option<Huffman>; 4],
    restart: usize,
    kind: ScanKind,
}

/// One block of a scan's MCU: which component, where in the MCU, with which tables.
struct Slot<'a> {
    ci: usize,
    /// The block's offset from the MCU's first block of this component, in blocks.
    dx: usize,
    dy: usize,
    /// Index of the component's DC predictor.
    pred: usize,
    dc: Option<&'a Huffman>,
    ac: Option<&'a Huffman>,
}

impl ScanJob<'_> {
    /// Decodes one scan from `start`; returns where its entropy data ends.
    fn run(&self, bytes: &[u8], start: usize, planes: &mut Planes) -> Result<usize> {
        let sequential = matches!(self.kind, ScanKind::Sequential);
        let single = self.scan.len() == 1;
        let mut slots = Vec::new();
        for (pred, &(ci, td, ta)) in self.scan.iter().enumerate() {
            let dc = match self.kind {
                ScanKind::DcRefine(_) => None,
                _ => Some(
                    self.dc_tables
                        .get(td)
                        .and_then(Option::as_ref)
                        .ok_or(Unsupported("missing DC table"))?,
                ),
            };
            let ac = if sequential {
                Some(
                    self.ac_tables
                        .get(ta)
                        .and_then(Option::as_ref)
                        .ok_or(Unsupported("missing AC table"))?,
                )
            } else {
                None
            };
            let c = &self.comps[ci];
            let (nh, nv) = if single { (1, 1) } else { (c.h, c.v) };
            for dy in 0..nv {
                for dx in 0..nh {
                    slots.push(Slot {
                        ci,
                        dx,
                        dy,
                        pred,
                        dc,
                        ac,
                    });
                }
            }
        }
        let (units_x, units_y) = if single {
            let c = &self.comps[self.scan[0].0];
            (c.real_w, c.real_h)
        } else {
            let c = &self.comps[0];
            (c.bw / c.h, c.bh / c.v)
        };
        let Planes {
            dc,
            quarter,
            quarter_weights,
        } = planes;
        let (weights, mask) = (&quarter_weights.0, quarter_weights.1);
        // The block decoders, one per kind of scan, each monomorphised into the MCU loop.
        match self.kind {
            ScanKind::Sequential => self.each_block(
                bytes,
                start,
                &slots,
                (units_x, units_y),
                |bits, slot, b, pred| {
                    let table = slot.dc.ok_or(Unsupported("missing DC table"))?;
                    let ac = slot.ac.ok_or(Unsupported("missing AC table"))?;
                    *pred = pred.wrapping_add(dc_diff(table, bits)?);
                    let plane = dc.get_mut(slot.ci).ok_or(Unsupported("component"))?;
                    *plane.get_mut(b).ok_or(Unsupported("block"))? = *pred;
                    match quarter.as_mut().filter(|_| slot.ci == 0) {
                        Some(q) => {
                            *q.get_mut(b).ok_or(Unsupported("block"))? =
                                ac_quadrants(ac, bits, weights, mask)?
                        }
                        None => skip_ac(ac, bits)?,
                    }
                    Ok(())
                },
            ),
            ScanKind::DcFirst(al) => self.each_block(
                bytes,
                start,
                &slots,
                (units_x, units_y),
                |bits, slot, b, pred| {
                    let table = slot.dc.ok_or(Unsupported("missing DC table"))?;
                    *pred = pred.wrapping_add(dc_diff(table, bits)?);
                    let plane = dc.get_mut(slot.ci).ok_or(Unsupported("component"))?;
                    *plane.get_mut(b).ok_or(Unsupported("block"))? = *pred << al;
                    Ok(())
                },
            ),
            ScanKind::DcRefine(al) => self.each_block(
                bytes,
                start,
                &slots,
                (units_x, units_y),
                |bits, slot, b, _| {
                    if bits.take(1) == 1 {
                        let plane = dc.get_mut(slot.ci).ok_or(Unsupported("component"))?;
                        *plane.get_mut(b).ok_or(Unsupported("block"))? |= 1 << al;
                    }
                    Ok(())
                },
            ),
        }
    }

    /// Runs `block` on every block of the scan in order (MCU by MCU, restart intervals
    /// checked), with at least 32 bits ready; returns where the entropy data ends.
    #[inline(always)]
    fn each_block(
        &self,
        bytes: &[u8],
        start: usize,
        slots: &[Slot],
        (units_x, units_y): (usize, usize),
        mut block: impl FnMut(&mut Bits, &Slot, usize, &mut i32) -> Result<()>,
    ) -> Result<usize> {
        let single = self.scan.len() == 1;
        let mut bits = Bits::new(bytes, start);
        let mut pred = [0i32; 4];
        let mut next_rst = 0u8;
        let mut left = self.restart;
        for uy in 0..units_y {
            for ux in 0..units_x {
                if self.restart > 0 {
                    if left == 0 {
                        let at = bits.finish()?;
                        if bytes.get(at) != Some(&0xFF)
                            || bytes.get(at + 1) != Some(&(0xD0 + next_rst))
                        {
                            return Err(Unsupported("restart marker out of place"));
                        }
                        next_rst = (next_rst + 1) & 7;
                        bits = Bits::new(bytes, at + 2);
                        pred = [0; 4];
                        left = self.restart;
                    }
                    left -= 1;
                }
                for slot in slots {
                    let c = &self.comps[slot.ci];
                    let (bx, by) = if single {
                        (ux, uy)
                    } else {
                        (ux * c.h + slot.dx, uy * c.v + slot.dy)
                    };
                    bits.fill();
                    let p = pred.get_mut(slot.pred).ok_or(Unsupported("predictor"))?;
                    block(&mut bits, slot, by * c.bw + bx, p)?;
                }
            }
        }
        bits.finish()
    }
}

/// A DC difference: its size category, then that many bits.
#[inline(always)]
fn dc_diff(table: &Huffman, bits: &mut Bits) -> Result<i32> {
    let s = u32::from(table.decode(bits)?);
    if s > 11 {
        return Err(Unsupported("bad DC size"));
    }
    Ok(extend(bits.take(s), s))
}

/// Reads past a block's 63 AC coefficients without computing any of them: each is a
/// Huffman code and `size` extra bits, consumed together.
#[inline(always)]
fn skip_ac(ac: &Huffman, bits: &mut Bits) -> Result<()> {
    let mut k = 1u32;
    while k < 64 {
        bits.fill();
        // Several whole coefficients at once, when the next bits hold them and they stay
        // inside the block.
        let e = ac.group[(bits.acc >> (64 - GROUP)) as usize & ((1 << GROUP) - 1)];
        if e != 0 {
            let (used, advance, eob) = Group::unpack(e);
            if eob && k + advance < 64 {
                bits.consume(used);
                return Ok(());
            }
            if !eob && k + advance <= 64 {
                bits.consume(used);
                k += advance;
                continue;
            }
        }
        let rs = u32::from(ac.decode(bits)?);
        let (run, size) = (rs >> 4, rs & 15);
        if size == 0 {
            if run != 15 {
                return Ok(());
            }
            k += 16;
            continue;
        }
        if size > 10 {
            return Err(Unsupported("bad AC coefficient"));
        }
        bits.consume(size);
        k += run + 1;
    }
    if k > 64 {
        return Err(Unsupported("bad AC run"));
    }
    Ok(())
}

/// A block's AC coefficients folded into its four quadrant means (without the DC term).
#[inline(always)]
fn ac_quadrants(
    ac: &Huffman,
    bits: &mut Bits,
    weights: &[[f32; 4]; 64],
    mask: u64,
) -> Result<[f32; 4]> {
    let mut quad = [0f32; 4];
    let mut k = 1usize;
    while k < 64 {
        bits.fill();
        let rs = ac.decode(bits)?;
        let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
        if size == 0 {
            if run != 15 {
                return Ok(quad);
            }
            k += 16;
            continue;
        }
        k += run;
        if k > 63 || size > 10 {
            return Err(Unsupported("bad AC coefficient"));
        }
        let value = extend(bits.take(size), size) as f32;
        if mask & (1 << k) != 0 {
            let w = &weights[k];
            quad[0] += value * w[0];
            quad[1] += value * w[1];
            quad[2] += value * w[2];
            quad[3] += value * w[3];
        }
        k += 1;
    }
    if k > 64 {
        return Err(Unsupported("bad AC run"));
    }
    Ok(quad)
}

/// A cursor over the marker segments of a JPEG.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8> {
        let b = *self.data.get(self.pos).ok_or(Unsupported("short header"))?;
        self.pos += 1;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = self
            .data
            .get(self.pos..self.pos + n)
            .ok_or(Unsupported("short header"))?;
        self.pos += n;
        Ok(s)
    }

    /// The next marker's code (fill bytes skipped).
    fn marker(&mut self) -> Result<u8> {
        if self.u8()? != 0xFF {
            return Err(Unsupported("no marker where one belongs"));
        }
        let mut m = self.u8()?;
        while m == 0xFF {
            m = self.u8()?;
        }
        Ok(m)
    }

    /// A marker segment's payload (after its length).
    fn segment(&mut self) -> Result<&'a [u8]> {
        let len = usize::from(self.u16()?);
        if len < 2 {
            return Err(Unsupported("bad segment length"));
        }
        self.take(len - 2)
    }

    /// A cursor over the next marker segment's payload.
    fn segment_reader(&mut self) -> Result<Reader<'a>> {
        self.segment().map(|data| Reader { data, pos: 0 })
    }

    fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn film(w: u32, h: u32) -> GrayImage {
        // A smooth film-like picture with edges: gradients, a bright disc, a dark bar.
        GrayImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let disc = ((fx - 0.4).powi(2) + (fy - 0.5).powi(2) < 0.04) as u8 as f32 * 60.0;
            let bar = (fx > 0.7 && fx < 0.75) as u8 as f32 * -50.0;
            let v = 60.0 + 100.0 * fx * (1.0 - fy) + disc + bar + 20.0 * (fx * 40.0).sin();
            image::Luma([v.clamp(0.0, 255.0) as u8])
        })
    }

    fn jpeg(img: image::DynamicImage, quality: u8) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
            .encode_image(&img)
            .expect("encode");
        out
    }

    /// The full decode box-averaged by `k`.
    fn box_mean(full: &GrayImage, k: u32) -> GrayImage {
        let (w, h) = (full.width().div_ceil(k), full.height().div_ceil(k));
        GrayImage::from_fn(w, h, |bx, by| {
            let (mut s, mut n) = (0u32, 0u32);
            for y in by * k..((by + 1) * k).min(full.height()) {
                for x in bx * k..((bx + 1) * k).min(full.width()) {
                    s += u32::from(full.get_pixel(x, y).0[0]);
                    n += 1;
                }
            }
            image::Luma([((s + n / 2) / n) as u8])
        })
    }

    fn mean_abs_diff(a: &GrayImage, b: &GrayImage) -> f32 {
        assert_eq!(a.dimensions(), b.dimensions());
        let s: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum();
        s as f32 / a.as_raw().len() as f32
    }

    #[test]
    fn gray_baseline_is_the_full_decode_box_averaged() {
        // 1203 x 997: partial blocks at the right and bottom edges.
        let bytes = jpeg(film(1203, 997).into(), 90);
        let full = image::load_from_memory(&bytes).expect("decode").to_luma8();
        let reduced = decode_reduced(&bytes, true).expect("reduced");
        let eighth = box_mean(&full, 8);
        let quarter = box_mean(&full, 4);
        assert_eq!(reduced.eighth.dimensions(), (151, 125));
        // Interior blocks only: the encoder pads partial blocks with its own pixels.
        let inner = |img: &GrayImage, k: u32| {
            image::imageops::crop_imm(img, 0, 0, 1200 / k, 992 / k).to_image()
        };
        let d8 = mean_abs_diff(&inner(&reduced.eighth, 8), &inner(&eighth, 8));
        let q = reduced.quarter.as_ref().expect("quarter");
        let d4 = mean_abs_diff(&inner(q, 4), &inner(&quarter, 4));
        assert!(d8 < 0.6, "1/8 differs from the box mean by {d8}");
        assert!(d4 < 0.6, "1/4 differs from the box mean by {d4}");
        assert!(!reduced.colour);
    }

    #[test]
    fn colour_and_gray_coded_as_colour() {
        let gray = film(800, 640);
        let as_rgb = image::DynamicImage::ImageLuma8(gray.clone()).to_rgb8();
        let bytes = jpeg(as_rgb.into(), 85);
        let reduced = decode_reduced(&bytes, false).expect("reduced");
        assert!(!reduced.colour, "a gray film coded as YCbCr is not colour");
        let full = image::load_from_memory(&bytes).expect("decode").to_luma8();
        let d = mean_abs_diff(
            &image::imageops::crop_imm(&reduced.eighth, 0, 0, 100, 80).to_image(),
            &image::imageops::crop_imm(&box_mean(&full, 8), 0, 0, 100, 80).to_image(),
        );
        assert!(d < 1.0, "{d}");
        let red = image::RgbImage::from_fn(800, 640, |x, _| image::Rgb([200, (x % 50) as u8, 30]));
        let reduced = decode_reduced(&jpeg(red.into(), 85), false).expect("reduced");
        assert!(reduced.colour);
    }

    #[test]
    fn damage_and_unusual_files_are_declined_not_guessed() {
        let bytes = jpeg(film(640, 640).into(), 90);
        assert!(decode_reduced(&bytes, true).is_ok());
        // Cut inside the scan, with an end-of-image marker appended.
        let mut cut = bytes[..bytes.len() / 2].to_vec();
        cut.extend_from_slice(&[0xFF, 0xD9]);
        assert!(decode_reduced(&cut, true).is_err());
        // 12-bit and arithmetic-coded frames.
        let sof = bytes
            .windows(2)
            .position(|m| m == [0xFF, 0xC0])
            .expect("SOF0");
        let mut twelve = bytes.clone();
        twelve[sof + 4] = 12;
        assert_eq!(
            decode_reduced(&twelve, true).unwrap_err(),
            Unsupported("not 8-bit")
        );
        let mut arith = bytes.clone();
        arith[sof + 1] = 0xC9;
        assert!(decode_reduced(&arith, true).is_err());
        // A scan naming Huffman tables 15 (there are four).
        let mut tables = bytes.clone();
        let sos_at = bytes
            .windows(2)
            .position(|m| m == [0xFF, 0xDA])
            .expect("SOS");
        tables[sos_at + 6] = 0xFF;
        assert!(decode_reduced(&tables, true).is_err());
        // Every byte of the entropy data flipped in turn at a few places: never a panic.
        let sos = bytes
            .windows(2)
            .position(|m| m == [0xFF, 0xDA])
            .expect("SOS");
        for at in (sos + 20..bytes.len() - 2).step_by(97) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x5A;
            let _ = decode_reduced(&bad, true);
        }
    }
}
