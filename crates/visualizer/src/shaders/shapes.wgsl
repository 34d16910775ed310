// Instanced 2D primitives with signed-distance anti-aliasing.
// kind 0: rounded rectangle (a = x, y, w, h; p.x = corner radius; p.y = stroke width, 0 fills)
// kind 1: segment with round caps (a = x0, y0, x1, y1; p.x = thickness)

override SRGB_TARGET: bool = false;

struct Globals {
    size: vec2<f32>,
    _pad: vec2<f32>,
};

@group(0) @binding(0) var<uniform> globals: Globals;

struct Instance {
    @location(0) a: vec4<f32>,
    @location(1) color: vec4<f32>,
    @location(2) p: vec4<f32>,
};

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) px: vec2<f32>,
    @location(1) @interpolate(flat) a: vec4<f32>,
    @location(2) @interpolate(flat) color: vec4<f32>,
    @location(3) @interpolate(flat) p: vec4<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) vi: u32, inst: Instance) -> VsOut {
    // Two triangles: corners (0,0) (1,0) (0,1) (1,0) (1,1) (0,1).
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0), vec2<f32>(0.0, 1.0),
    );
    let c = corners[vi];
    var px: vec2<f32>;
    let kind = u32(inst.p.w);
    if kind == 1u {
        let a = inst.a.xy;
        let b = inst.a.zw;
        let r = inst.p.x * 0.5 + 1.0;
        var d = b - a;
        let len = length(d);
        if len < 1e-4 {
            d = vec2<f32>(1.0, 0.0);
        } else {
            d = d / len;
        }
        let n = vec2<f32>(-d.y, d.x);
        let start = a - d * r;
        let along = len + 2.0 * r;
        px = start + d * (c.x * along) + n * ((c.y * 2.0 - 1.0) * r);
    } else {
        let lo = inst.a.xy - vec2<f32>(1.0);
        let hi = inst.a.xy + inst.a.zw + vec2<f32>(1.0);
        px = mix(lo, hi, c);
    }
    var out: VsOut;
    let ndc = vec2<f32>(px.x / globals.size.x * 2.0 - 1.0, 1.0 - px.y / globals.size.y * 2.0);
    out.pos = vec4<f32>(ndc, 0.0, 1.0);
    out.px = px;
    out.a = inst.a;
    out.color = inst.color;
    out.p = inst.p;
    return out;
}

fn sd_round_box(p: vec2<f32>, half: vec2<f32>, r: f32) -> f32 {
    let q = abs(p) - half + vec2<f32>(r);
    return length(max(q, vec2<f32>(0.0))) + min(max(q.x, q.y), 0.0) - r;
}

fn sd_segment(p: vec2<f32>, a: vec2<f32>, b: vec2<f32>) -> f32 {
    let pa = p - a;
    let ba = b - a;
    let h = clamp(dot(pa, ba) / max(dot(ba, ba), 1e-6), 0.0, 1.0);
    return length(pa - ba * h);
}

fn to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + vec3<f32>(0.055)) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let kind = u32(in.p.w);
    var d: f32;
    if kind == 1u {
        d = sd_segment(in.px, in.a.xy, in.a.zw) - in.p.x * 0.5;
    } else {
        let half = in.a.zw * 0.5;
        let center = in.a.xy + half;
        let r = min(in.p.x, min(half.x, half.y));
        d = sd_round_box(in.px - center, half, r);
        let stroke = in.p.y;
        if stroke > 0.0 {
            // Keep only a band `stroke` wide just inside the edge.
            d = abs(d + stroke * 0.5) - stroke * 0.5;
        }
    }
    let coverage = clamp(0.5 - d, 0.0, 1.0);
    if coverage <= 0.0 {
        discard;
    }
    var rgb = in.color.rgb;
    if SRGB_TARGET {
        rgb = to_linear(rgb);
    }
    return vec4<f32>(rgb, in.color.a * coverage);
}
