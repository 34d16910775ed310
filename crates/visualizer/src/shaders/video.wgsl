// I420 -> RGB: three single-channel textures, an affine colour matrix, aspect-fit letterboxing.

override SRGB_TARGET: bool = false;

struct Params {
    // Region covered by the quad, in NDC: x0, y0 (top-left), x1, y1 (bottom-right).
    region: vec4<f32>,
    // Picture inside the region, in region-relative 0..1 units: x, y, w, h.
    picture: vec4<f32>,
    // rgb = m * vec4(y, u, v, 1), rows.
    m0: vec4<f32>,
    m1: vec4<f32>,
    m2: vec4<f32>,
    // Colour of the letterbox bars.
    border: vec4<f32>,
    // Display-to-texture rotation about the centre, rows of a 2x2 matrix: (xy), (zw).
    rot: vec4<f32>,
};

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var tex_y: texture_2d<f32>;
@group(0) @binding(2) var tex_u: texture_2d<f32>;
@group(0) @binding(3) var tex_v: texture_2d<f32>;
@group(0) @binding(4) var samp: sampler;

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) t: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) vi: u32) -> VsOut {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(0.0, 1.0),
        vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0), vec2<f32>(0.0, 1.0),
    );
    let c = corners[vi];
    var out: VsOut;
    out.pos = vec4<f32>(mix(params.region.xy, params.region.zw, c), 0.0, 1.0);
    out.t = c;
    return out;
}

fn to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + vec3<f32>(0.055)) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let t = (in.t - params.picture.xy) / params.picture.zw;
    let d = t - vec2<f32>(0.5);
    let uv = vec2<f32>(dot(params.rot.xy, d), dot(params.rot.zw, d)) + vec2<f32>(0.5);
    // Sample in uniform control flow, then choose picture or border.
    let suv = clamp(uv, vec2<f32>(0.0), vec2<f32>(1.0));
    let yuv = vec4<f32>(
        textureSample(tex_y, samp, suv).r,
        textureSample(tex_u, samp, suv).r,
        textureSample(tex_v, samp, suv).r,
        1.0,
    );
    let picture = clamp(
        vec3<f32>(dot(params.m0, yuv), dot(params.m1, yuv), dot(params.m2, yuv)),
        vec3<f32>(0.0),
        vec3<f32>(1.0),
    );
    let outside = any(t < vec2<f32>(0.0)) || any(t > vec2<f32>(1.0));
    var rgb = select(picture, params.border.rgb, outside);
    if SRGB_TARGET {
        rgb = to_linear(rgb);
    }
    return vec4<f32>(rgb, 1.0);
}
