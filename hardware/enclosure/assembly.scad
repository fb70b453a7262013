// Preview, not a part to print: a case and its lid slid into a clip, to see that the rail, the channel and the
// detent line up. openscad -D 'build="b"' -D 'clip="thigh"' -o assembly.png assembly.scad
use <case_a.scad>
use <case_b.scad>
use <clip_sacrum.scad>
use <clip_thigh.scad>
include <common.scad>

build = "a";        // "a" or "b"
clip = "sacrum";    // "sacrum" or "thigh"

channel = clip == "sacrum" ? clip_sacrum_channel() : clip_thigh_channel();
outer = build == "a" ? case_a_outer() : case_b_outer();

if (clip == "sacrum") clip_sacrum(); else clip_thigh();
// the case's back wall rests on the channel block, its rail centred on the channel, its bottom on the stop
translate([channel[0] - outer[0] / 2, channel[1] + rail_h + rail_clear, channel[2]]) {
    if (build == "a") case_a("case"); else case_b("case");
    translate([0, outer[1] + 0.5, 0]) if (build == "a") case_a("lid"); else case_b("lid");
}
