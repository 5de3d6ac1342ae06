//! Images: decoding under limits, thumbnails (SIMD resize, lossy WebP) and media metadata (EXIF).
//!
//! JPEG decodes through libjpeg-turbo (`turbojpeg`, built from its vendored source) at a reduced
//! size when a thumbnail needs less than the whole picture (DCT scaling in eighths: a 4000×3000
//! photo becomes a 500×375 picture for a 256 px thumbnail without ever being decoded whole), with
//! a limit on progressive scans; a file it refuses (libjpeg-turbo stops at any warning, such as
//! stray bytes before a marker) is tried again with the more lenient `jpeg-decoder`. PNG, GIF
//! (its first frame), WebP, BMP and TIFF decode through `image` with its `Limits`. Every decoder
//! is told the largest picture it may make before it allocates it, so a header that claims
//! 100,000 × 100,000 pixels is refused, not attempted.

use std::io::Cursor;

use fast_image_resize as fr;
use image::metadata::Orientation;

/// Thumbnail variants: name and longest side in pixels (never upscaled).
pub const VARIANTS: [(&str, u32); 3] =
    [("grid-256", 256), ("grid-512", 512), ("detail-1024", 1024)];

/// How much a decoder may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest side of a source picture.
    pub max_side: u32,
    /// Pixels of a source picture (width × height).
    pub max_pixels: u64,
    /// Bytes a decoder may allocate for one picture.
    pub max_alloc: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_side: 65_535,
            max_pixels: 150_000_000,
            max_alloc: 1 << 30,
        }
    }
}

/// Why a picture could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// Not a format this build decodes.
    Unsupported(String),
    /// The file is damaged, truncated, or over a limit.
    Failed(String),
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageError::Unsupported(s) | ImageError::Failed(s) => f.write_str(s),
        }
    }
}

/// A decoded picture: RGB or RGBA, 8 bits a channel, perhaps reduced from the source.
pub struct Picture {
    pub pixels: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// 3 (RGB) or 4 (RGBA).
    pub channels: u8,
    /// The source's stored size (before orientation).
    pub source_width: u32,
    pub source_height: u32,
    pub orientation: Orientation,
}

/// A thumbnail, encoded.
pub struct Thumb {
    pub variant: &'static str,
    pub webp: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// What EXIF says about a picture.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exif {
    /// `DateTimeOriginal` as written (`YYYY:MM:DD HH:MM:SS`) and its offset (`+01:00`), if any.
    pub taken: Option<(String, Option<String>)>,
    pub make: Option<String>,
    pub model: Option<String>,
    pub lens: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub orientation: Option<u32>,
}

/// Whether a `w`×`h` picture is within `limits` (and not empty).
pub fn within(w: u32, h: u32, limits: &Limits) -> bool {
    over_limit(w, h, limits).is_none()
}

fn over_limit(w: u32, h: u32, limits: &Limits) -> Option<ImageError> {
    if w == 0 || h == 0 {
        return Some(ImageError::Failed(format!("the picture is {w}×{h} pixels")));
    }
    if w.max(h) > limits.max_side || u64::from(w) * u64::from(h) > limits.max_pixels {
        return Some(ImageError::Failed(format!(
            "{w}×{h} pixels is over the limit ({} px a side, {} megapixels); not decoded",
            limits.max_side,
            limits.max_pixels / 1_000_000
        )));
    }
    None
}

/// Decodes `bytes`, reduced (JPEG) to no less than `want` pixels on the longest side when the
/// source is larger.
pub fn decode(bytes: &[u8], want: u32, limits: &Limits) -> Result<Picture, ImageError> {
    let format = image::guess_format(bytes).map_err(|_| {
        ImageError::Unsupported("not an image format this build decodes".to_owned())
    })?;
    use image::ImageFormat as F;
    match format {
        F::Jpeg => decode_jpeg(bytes, want, limits),
        F::Png | F::Gif | F::WebP | F::Bmp | F::Tiff => decode_other(bytes, format, limits),
        other => Err(ImageError::Unsupported(format!(
            "no decoder for {} images in this build",
            other.extensions_str().first().unwrap_or(&"these")
        ))),
    }
}

fn decode_jpeg(bytes: &[u8], want: u32, limits: &Limits) -> Result<Picture, ImageError> {
    match decode_jpeg_turbo(bytes, want, limits) {
        Ok(pic) => Ok(pic),
        Err(e @ ImageError::Unsupported(_)) => Err(e),
        Err(first) => decode_jpeg_lenient(bytes, want, limits).map_err(|_| first),
    }
}

/// Progressive scans a JPEG may have before it is refused: real files have about ten; a file
/// with thousands of tiny scans is a known way to make a decoder spin (libjpeg-turbo's advice).
const MAX_SCANS: u32 = 500;

/// The smallest of libjpeg-turbo's scaling factors (eighths, at most 1) that keeps the longest
/// side at `want` or more.
fn jpeg_scale(long_side: usize, want: u32) -> turbojpeg::ScalingFactor {
    turbojpeg::Decompressor::supported_scaling_factors()
        .into_iter()
        .filter(|f| f.num() <= f.denom() && f.scale(long_side) >= want as usize)
        .min_by(|a, b| (a.num() * b.denom()).cmp(&(b.num() * a.denom())))
        .unwrap_or(turbojpeg::ScalingFactor::ONE)
}

fn decode_jpeg_turbo(bytes: &[u8], want: u32, limits: &Limits) -> Result<Picture, ImageError> {
    use turbojpeg::{Colorspace, Image, PixelFormat};
    let failed = |e: turbojpeg::Error| ImageError::Failed(format!("JPEG: {e}"));
    let mut d = turbojpeg::Decompressor::new().map_err(failed)?;
    let header = d.read_header(bytes).map_err(failed)?;
    let (sw, sh) = (
        u32::try_from(header.width).unwrap_or(u32::MAX),
        u32::try_from(header.height).unwrap_or(u32::MAX),
    );
    if let Some(e) = over_limit(sw, sh, limits) {
        return Err(e);
    }
    let scale = if header.is_lossless {
        turbojpeg::ScalingFactor::ONE
    } else {
        jpeg_scale(header.width.max(header.height), want)
    };
    d.set_scaling_factor(scale).map_err(failed)?;
    d.set_scan_limit(MAX_SCANS).map_err(failed)?;
    let out = header.scaled(scale);
    let cmyk = matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK);
    let (format, size) = if cmyk {
        (PixelFormat::CMYK, 4)
    } else {
        (PixelFormat::RGB, 3)
    };
    let len = out.width * out.height * size;
    if len as u64 > limits.max_alloc {
        return Err(ImageError::Failed(format!(
            "JPEG: {}×{} pixels is over the decoding memory limit",
            out.width, out.height
        )));
    }
    let mut image = Image {
        pixels: vec![0u8; len],
        width: out.width,
        pitch: out.width * size,
        height: out.height,
        format,
    };
    d.decompress(bytes, image.as_deref_mut()).map_err(failed)?;
    let pixels = if cmyk {
        cmyk_to_rgb(&image.pixels)
    } else {
        image.pixels
    };
    Ok(Picture {
        pixels,
        width: out.width as u32,
        height: out.height as u32,
        channels: 3,
        source_width: sw,
        source_height: sh,
        orientation: jpeg_orientation(bytes),
    })
}

/// Inverted (Adobe) CMYK, as JPEG decoders give it, to RGB.
fn cmyk_to_rgb(data: &[u8]) -> Vec<u8> {
    data.chunks_exact(4)
        .flat_map(|p| {
            let k = u16::from(p[3]);
            let ch = |c: u8| ((u16::from(c) * k) / 255) as u8;
            [ch(p[0]), ch(p[1]), ch(p[2])]
        })
        .collect()
}

fn jpeg_orientation(bytes: &[u8]) -> Orientation {
    exif(bytes)
        .and_then(|e| e.orientation)
        .and_then(|o| Orientation::from_exif(o as u8))
        .unwrap_or(Orientation::NoTransforms)
}

fn decode_jpeg_lenient(bytes: &[u8], want: u32, limits: &Limits) -> Result<Picture, ImageError> {
    let failed = |e: jpeg_decoder::Error| ImageError::Failed(format!("JPEG: {e}"));
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    d.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    d.read_info().map_err(failed)?;
    let info = d
        .info()
        .ok_or_else(|| ImageError::Failed("JPEG: no frame header".into()))?;
    let (sw, sh) = (u32::from(info.width), u32::from(info.height));
    if let Some(e) = over_limit(sw, sh, limits) {
        return Err(e);
    }
    let req = u16::try_from(want.max(1)).unwrap_or(u16::MAX);
    d.scale(req, req).map_err(failed)?;
    let data = d.decode().map_err(failed)?;
    let info = d
        .info()
        .ok_or_else(|| ImageError::Failed("JPEG: no frame header".into()))?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let n = w as usize * h as usize;
    use jpeg_decoder::PixelFormat as P;
    let rgb: Vec<u8> = match info.pixel_format {
        P::RGB24 => data,
        P::L8 => data.iter().flat_map(|&l| [l, l, l]).collect(),
        P::L16 => data
            .chunks_exact(2)
            .flat_map(|c| [c[0], c[0], c[0]])
            .collect(),
        P::CMYK32 => cmyk_to_rgb(&data),
    };
    if rgb.len() < n * 3 {
        return Err(ImageError::Failed(
            "JPEG: fewer pixels than its header says".into(),
        ));
    }
    Ok(Picture {
        pixels: rgb,
        width: w,
        height: h,
        channels: 3,
        source_width: sw,
        source_height: sh,
        orientation: jpeg_orientation(bytes),
    })
}

fn decode_other(
    bytes: &[u8],
    format: image::ImageFormat,
    limits: &Limits,
) -> Result<Picture, ImageError> {
    use image::ImageDecoder;
    let failed = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => ImageError::Failed(format!("over a decoding limit: {l}")),
        image::ImageError::Unsupported(u) => ImageError::Unsupported(u.to_string()),
        other => ImageError::Failed(other.to_string()),
    };
    let mut reader = image::ImageReader::new(Cursor::new(bytes));
    reader.set_format(format);
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    let mut decoder = reader.into_decoder().map_err(failed)?;
    let (sw, sh) = decoder.dimensions();
    if let Some(e) = over_limit(sw, sh, limits) {
        return Err(e);
    }
    let orientation = decoder
        .orientation()
        .ok()
        .filter(|o| *o != Orientation::NoTransforms)
        .or_else(|| {
            exif(bytes)
                .and_then(|e| e.orientation)
                .and_then(|o| Orientation::from_exif(o as u8))
        })
        .unwrap_or(Orientation::NoTransforms);
    let img = image::DynamicImage::from_decoder(decoder).map_err(failed)?;
    let (w, h) = (img.width(), img.height());
    let (pixels, channels) = if img.color().has_alpha() {
        (img.into_rgba8().into_raw(), 4)
    } else {
        (img.into_rgb8().into_raw(), 3)
    };
    Ok(Picture {
        pixels,
        width: w,
        height: h,
        channels,
        source_width: sw,
        source_height: sh,
        orientation,
    })
}

/// The size of a `w`×`h` picture fitted into `side` on its longest side, never enlarged.
pub fn fit(w: u32, h: u32, side: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= side {
        return (w, h);
    }
    let scale = |v: u32| {
        ((u64::from(v) * u64::from(side) + u64::from(long) / 2) / u64::from(long)).max(1) as u32
    };
    (scale(w), scale(h))
}

fn pixel_type(channels: u8) -> fr::PixelType {
    if channels == 4 {
        fr::PixelType::U8x4
    } else {
        fr::PixelType::U8x3
    }
}

/// `pic` resized to fit `side` (never enlarged).
pub fn resize(pic: &Picture, side: u32) -> Result<Picture, ImageError> {
    let (w, h) = fit(pic.width, pic.height, side);
    if (w, h) == (pic.width, pic.height) {
        return Ok(Picture {
            pixels: pic.pixels.clone(),
            ..*pic
        });
    }
    let pt = pixel_type(pic.channels);
    let src = fr::images::ImageRef::new(pic.width, pic.height, &pic.pixels, pt)
        .map_err(|e| ImageError::Failed(format!("resizing: {e}")))?;
    let mut dst = fr::images::Image::new(w, h, pt);
    let options =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    fr::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| ImageError::Failed(format!("resizing: {e}")))?;
    Ok(Picture {
        pixels: dst.into_vec(),
        width: w,
        height: h,
        ..*pic
    })
}

/// `pic` turned upright (its EXIF orientation applied).
pub fn upright(pic: Picture) -> Result<Picture, ImageError> {
    if pic.orientation == Orientation::NoTransforms {
        return Ok(pic);
    }
    let bad = || ImageError::Failed("pixel buffer of the wrong size".into());
    let mut img = if pic.channels == 4 {
        image::DynamicImage::ImageRgba8(
            image::RgbaImage::from_raw(pic.width, pic.height, pic.pixels).ok_or_else(bad)?,
        )
    } else {
        image::DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(pic.width, pic.height, pic.pixels).ok_or_else(bad)?,
        )
    };
    img.apply_orientation(pic.orientation);
    let (width, height) = (img.width(), img.height());
    let pixels = if pic.channels == 4 {
        img.into_rgba8().into_raw()
    } else {
        img.into_rgb8().into_raw()
    };
    Ok(Picture {
        pixels,
        width,
        height,
        orientation: Orientation::NoTransforms,
        ..pic
    })
}

/// Lossy WebP at quality 80.
pub fn webp(pic: &Picture) -> Result<Vec<u8>, ImageError> {
    let layout = if pic.channels == 4 {
        webp::PixelLayout::Rgba
    } else {
        webp::PixelLayout::Rgb
    };
    let mut config =
        webp::WebPConfig::new().map_err(|()| ImageError::Failed("WebP: no encoder".into()))?;
    config.quality = 80.0;
    config.method = 3;
    let mem = webp::Encoder::new(&pic.pixels, layout, pic.width, pic.height)
        .encode_advanced(&config)
        .map_err(|e| ImageError::Failed(format!("WebP encoding: {e:?}")))?;
    Ok(mem.to_vec())
}

/// Thumbnails of `bytes` in the `variants` asked for (names from [`VARIANTS`]), largest first
/// decoded once and each smaller one resized from the one above it. Also returns the source's
/// displayed size (orientation applied).
pub fn thumbnails(
    bytes: &[u8],
    variants: &[(&'static str, u32)],
    limits: &Limits,
) -> Result<(Vec<Thumb>, (u32, u32)), ImageError> {
    let mut sorted = variants.to_vec();
    sorted.sort_by_key(|v| std::cmp::Reverse(v.1));
    let largest = sorted.first().map_or(256, |v| v.1);
    let pic = decode(bytes, largest, limits)?;
    let shown = displayed(pic.source_width, pic.source_height, pic.orientation);
    Ok((thumbnails_of(pic, &sorted)?, shown))
}

/// Thumbnails of a decoded picture, `variants` sorted largest first.
pub fn thumbnails_of(
    pic: Picture,
    variants: &[(&'static str, u32)],
) -> Result<Vec<Thumb>, ImageError> {
    let mut out = Vec::new();
    let mut from = pic;
    for &(name, side) in variants {
        let small = resize(&from, side)?;
        let shown = upright(Picture {
            pixels: small.pixels.clone(),
            ..small
        })?;
        out.push(Thumb {
            variant: name,
            webp: webp(&shown)?,
            width: shown.width,
            height: shown.height,
        });
        from = small;
    }
    Ok(out)
}

/// Width and height as displayed: orientations 5 to 8 turn the picture a quarter.
pub fn displayed(w: u32, h: u32, o: Orientation) -> (u32, u32) {
    use Orientation as O;
    match o {
        O::Rotate90 | O::Rotate270 | O::Rotate90FlipH | O::Rotate270FlipH => (h, w),
        _ => (w, h),
    }
}

/// The picture's size without decoding it (header only), for formats decoded here.
pub fn dimensions(bytes: &[u8], limits: &Limits) -> Option<(u32, u32)> {
    let format = image::guess_format(bytes).ok()?;
    if format == image::ImageFormat::Jpeg {
        let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
        d.read_info().ok()?;
        let i = d.info()?;
        return Some((u32::from(i.width), u32::from(i.height)));
    }
    let mut reader = image::ImageReader::new(Cursor::new(bytes));
    reader.set_format(format);
    let mut l = image::Limits::default();
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    reader.into_dimensions().ok()
}

/// EXIF of any container `kamadak-exif` reads (JPEG, TIFF, PNG, WebP, HEIF), if it has some.
pub fn exif(bytes: &[u8]) -> Option<Exif> {
    use exif::{In, Tag, Value};
    let parsed = match exif::Reader::new()
        .continue_on_error(true)
        .read_from_container(&mut Cursor::new(bytes))
    {
        Ok(e) => e,
        Err(exif::Error::PartialResult(p)) => p.into_inner().0,
        Err(_) => return None,
    };
    let text = |tag: Tag| -> Option<String> {
        let f = parsed.get_field(tag, In::PRIMARY)?;
        match &f.value {
            Value::Ascii(parts) => {
                let s = parts
                    .iter()
                    .map(|p| {
                        String::from_utf8_lossy(p)
                            .trim_matches(['\0', ' '])
                            .to_owned()
                    })
                    .find(|s| !s.is_empty())?;
                Some(s.chars().filter(|c| !c.is_control()).take(200).collect())
            }
            _ => None,
        }
    };
    let coordinate = |tag: Tag, reference: Tag, negative: u8| -> Option<f64> {
        let f = parsed.get_field(tag, In::PRIMARY)?;
        let Value::Rational(r) = &f.value else {
            return None;
        };
        let part = |i: usize| r.get(i).filter(|x| x.denom != 0).map(|x| x.to_f64());
        let deg = part(0)? + part(1).unwrap_or(0.0) / 60.0 + part(2).unwrap_or(0.0) / 3600.0;
        let negative = parsed
            .get_field(reference, In::PRIMARY)
            .and_then(|f| match &f.value {
                Value::Ascii(p) => p.first().and_then(|s| s.first()).copied(),
                _ => None,
            })
            .is_some_and(|c| c.eq_ignore_ascii_case(&negative));
        deg.is_finite().then_some(if negative { -deg } else { deg })
    };
    let latitude = coordinate(Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S')
        .filter(|v| (-90.0..=90.0).contains(v));
    let longitude = coordinate(Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W')
        .filter(|v| (-180.0..=180.0).contains(v));
    let out = Exif {
        taken: text(Tag::DateTimeOriginal)
            .or_else(|| text(Tag::DateTime))
            .map(|t| (t, text(Tag::OffsetTimeOriginal))),
        make: text(Tag::Make),
        model: text(Tag::Model),
        lens: text(Tag::LensModel),
        latitude,
        longitude,
        orientation: parsed
            .get_field(Tag::Orientation, In::PRIMARY)
            .and_then(|f| f.value.get_uint(0))
            .filter(|o| (1..=8).contains(o)),
    };
    (out != Exif::default()).then_some(out)
}

/// `YYYY:MM:DD HH:MM:SS` (EXIF's form) with an optional `±HH:MM` offset as nanoseconds since the
/// epoch; without an offset, a wall-clock time in `tz`.
pub fn exif_time(text: &str, offset: Option<&str>, tz: &jiff::tz::TimeZone) -> Option<i64> {
    let t = text.trim();
    let b = t.as_bytes();
    if b.len() < 19 || b[4] != b':' || b[7] != b':' {
        return None;
    }
    let iso = format!("{}-{}-{}T{}", &t[0..4], &t[5..7], &t[8..10], &t[11..19]);
    let dt: jiff::civil::DateTime = iso.parse().ok()?;
    let ts = match offset.map(str::trim).filter(|o| !o.is_empty()) {
        Some(o) => format!("{iso}{o}").parse::<jiff::Timestamp>().ok()?,
        None => tz.to_zoned_datetime(dt).ok()?.timestamp(),
    };
    i64::try_from(ts.as_nanosecond()).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A JPEG of `w`×`h` (a gradient: left red, top green) with an EXIF orientation, made here.
    pub(crate) fn jpeg(w: u32, h: u32, orientation: Option<u16>) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (255 - x * 255 / w.max(1)) as u8,
                (255 - y * 255 / h.max(1)) as u8,
                64,
            ])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        match orientation {
            Some(o) => with_exif(&out, &exif_app1(o, None, None)),
            None => out,
        }
    }

    /// A minimal EXIF APP1 segment: orientation, and optionally make/model and DateTimeOriginal.
    pub(crate) fn exif_app1(orientation: u16, make: Option<&str>, taken: Option<&str>) -> Vec<u8> {
        // Little-endian TIFF: IFD0 with Orientation (+ Make) (+ ExifIFD pointer → DateTimeOriginal).
        let mut entries: Vec<(u16, u16, u32, Vec<u8>)> = vec![(0x0112, 3, 1, {
            let mut v = orientation.to_le_bytes().to_vec();
            v.extend([0, 0]);
            v
        })];
        let ascii = |s: &str| {
            let mut v = s.as_bytes().to_vec();
            v.push(0);
            v
        };
        if let Some(m) = make {
            entries.push((0x010f, 2, (m.len() + 1) as u32, ascii(m)));
        }
        entries.sort_by_key(|e| e.0);
        let has_exif = taken.is_some();
        let n = entries.len() + usize::from(has_exif);
        let ifd0_size = 2 + n * 12 + 4;
        let mut data_off = 8 + ifd0_size;
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        let mut extra: Vec<u8> = Vec::new();
        tiff.extend((n as u16).to_le_bytes());
        let mut exif_ifd_at = 0;
        for (tag, ty, count, value) in &entries {
            tiff.extend(tag.to_le_bytes());
            tiff.extend(ty.to_le_bytes());
            tiff.extend(count.to_le_bytes());
            if value.len() <= 4 {
                let mut v = value.clone();
                v.resize(4, 0);
                tiff.extend(v);
            } else {
                tiff.extend((data_off as u32).to_le_bytes());
                extra.extend(value);
                data_off += value.len();
            }
        }
        if has_exif {
            tiff.extend(0x8769u16.to_le_bytes());
            tiff.extend(4u16.to_le_bytes());
            tiff.extend(1u32.to_le_bytes());
            exif_ifd_at = tiff.len();
            tiff.extend(0u32.to_le_bytes());
        }
        tiff.extend(0u32.to_le_bytes());
        tiff.extend(extra);
        if let Some(t) = taken {
            let at = tiff.len() as u32;
            tiff[exif_ifd_at..exif_ifd_at + 4].copy_from_slice(&at.to_le_bytes());
            let value = ascii(t);
            tiff.extend(1u16.to_le_bytes());
            tiff.extend(0x9003u16.to_le_bytes());
            tiff.extend(2u16.to_le_bytes());
            tiff.extend((value.len() as u32).to_le_bytes());
            tiff.extend((at + 2 + 12 + 4).to_le_bytes());
            tiff.extend(0u32.to_le_bytes());
            tiff.extend(value);
        }
        let mut seg = vec![0xff, 0xe1];
        seg.extend(((tiff.len() + 8) as u16).to_be_bytes());
        seg.extend(b"Exif\0\0");
        seg.extend(tiff);
        seg
    }

    /// `jpeg` with `app1` inserted right after its SOI marker.
    pub(crate) fn with_exif(jpeg: &[u8], app1: &[u8]) -> Vec<u8> {
        [&jpeg[..2], app1, &jpeg[2..]].concat()
    }

    #[test]
    fn fits_the_longest_side_and_never_enlarges() {
        assert_eq!(fit(4000, 3000, 256), (256, 192));
        assert_eq!(fit(3000, 4000, 256), (192, 256));
        assert_eq!(fit(100, 50, 256), (100, 50));
        assert_eq!(fit(1, 20_000, 1024), (1, 1024));
        assert_eq!(fit(20_000, 1, 256), (256, 1));
    }

    #[test]
    fn jpeg_decodes_reduced_and_turns_upright() {
        let bytes = jpeg(800, 400, Some(6));
        let pic = decode(&bytes, 100, &Limits::default()).unwrap();
        assert_eq!((pic.source_width, pic.source_height), (800, 400));
        assert_eq!((pic.width, pic.height), (100, 50), "decoded at 1/8");
        assert_eq!(pic.orientation, Orientation::Rotate90);
        let (thumbs, shown) = thumbnails(&bytes, &VARIANTS, &Limits::default()).unwrap();
        assert_eq!(shown, (400, 800));
        let sizes: Vec<_> = thumbs
            .iter()
            .map(|t| (t.variant, t.width, t.height))
            .collect();
        assert_eq!(
            sizes,
            [
                ("detail-1024", 400, 800),
                ("grid-512", 256, 512),
                ("grid-256", 128, 256)
            ]
        );
        for t in &thumbs {
            let back =
                image::load_from_memory_with_format(&t.webp, image::ImageFormat::WebP).unwrap();
            assert_eq!((back.width(), back.height()), (t.width, t.height));
        }
    }

    #[test]
    fn jpeg_scale_is_the_smallest_eighth_that_keeps_the_size() {
        let cases = [
            (4000, 256, (1, 8)),
            (4000, 1024, (3, 8)),
            (4000, 4000, (8, 8)),
        ];
        for (long, want, (num, denom)) in cases {
            let f = jpeg_scale(long, want);
            assert_eq!(f.num() * denom, num * f.denom(), "{long} → {want}: {f}");
        }
        // Smaller than asked: decoded whole, never enlarged.
        let f = jpeg_scale(200, 256);
        assert_eq!(f.num(), f.denom(), "{f}");
    }

    #[test]
    fn a_jpeg_libjpeg_turbo_refuses_is_decoded_leniently() {
        // Stray bytes between two segments: libjpeg-turbo warns ("extraneous bytes before
        // marker") and so refuses; cameras have written such files, and they still show.
        let good = jpeg(320, 240, None);
        let app0_end = 4 + usize::from(u16::from_be_bytes([good[4], good[5]]));
        let stray = [&good[..app0_end], b"\x12\x34".as_slice(), &good[app0_end..]].concat();
        assert!(decode_jpeg_turbo(&stray, 40, &Limits::default()).is_err());
        let pic = decode(&stray, 40, &Limits::default()).unwrap();
        assert_eq!((pic.width, pic.height), (40, 30));
        // libjpeg-turbo's eighths: 3/8 of 320 is the smallest that keeps 100.
        let clean = decode(&good, 100, &Limits::default()).unwrap();
        assert_eq!((clean.width, clean.height), (120, 90));
    }

    #[test]
    fn hostile_headers_are_refused_before_decoding() {
        // A PNG header claiming 100,000 × 100,000 pixels, and no data.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(100_000u32.to_be_bytes());
        png.extend(100_000u32.to_be_bytes());
        png.extend([8, 2, 0, 0, 0]);
        let crc = crc32(&png[12..]);
        png.extend(crc.to_be_bytes());
        let e = decode(&png, 256, &Limits::default()).err().unwrap();
        assert!(matches!(e, ImageError::Failed(_)), "{e:?}");
        // A truncated JPEG.
        let whole = jpeg(300, 200, None);
        let e = decode(&whole[..whole.len() / 3], 256, &Limits::default())
            .err()
            .unwrap();
        assert!(matches!(e, ImageError::Failed(_)), "{e:?}");
        assert!(matches!(
            decode(b"plain text, not a picture", 256, &Limits::default()),
            Err(ImageError::Unsupported(_))
        ));
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn exif_fields_are_read() {
        let bytes = with_exif(
            &jpeg(64, 48, None),
            &exif_app1(8, Some("Canon"), Some("2021:06:15 14:30:00")),
        );
        let e = exif(&bytes).unwrap();
        assert_eq!(e.orientation, Some(8));
        assert_eq!(e.make.as_deref(), Some("Canon"));
        assert_eq!(e.taken, Some(("2021:06:15 14:30:00".into(), None)));
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(
            exif_time("2021:06:15 14:30:00", None, &utc),
            Some(1_623_767_400 * 1_000_000_000)
        );
        assert_eq!(
            exif_time("2021:06:15 14:30:00", Some("+02:00"), &utc),
            Some((1_623_767_400 - 7200) * 1_000_000_000)
        );
        assert_eq!(exif_time("garbage", None, &utc), None);
    }
}
