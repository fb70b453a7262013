// hipcheck thigh clip for the clamshell: a saddle that lies on the outside of the top thigh above the knee, held
// by a 25 mm strap through its two slots; its outer face carries the channel for either case.
// Print standing on its end (z up), no supports. Render: openscad -o clip_thigh.stl clip_thigh.scad
include <common.scad>

thigh_r = 70;       // radius of the thigh where the clip sits (a thigh of ~44 cm around)
shell_t = 3;        // saddle thickness
chord = 56;         // saddle width across the thigh (x)
clip_h = 50;        // along the thigh (z)
strap_w = 27;       // slot length (z), for a 25 mm strap
strap_t = 4;        // slot width (x)
strap_inset = 7;    // slot centre from the saddle's edge
channel_wall = 3;
stop_t = 3;

channel_w = rail_top_w + 2 * rail_clear + 2 * channel_wall;
assert(chord < 2 * thigh_r, "the saddle is wider than the thigh");
assert(channel_w + 2 * (strap_inset + strap_t) <= chord, "the strap slots run into the channel");
// the saddle is the ring thigh_r..thigh_r + shell_t around the axis (0, -thigh_r), cut to |x| <= chord / 2
y_low = -thigh_r + sqrt(thigh_r * thigh_r - chord * chord / 4);      // its lowest edge (inner face, at the sides)
// the channel's floor: just inside the outer face at the channel's edges, so that the pad below it is buried
y_seat = -thigh_r + sqrt(pow(thigh_r + shell_t, 2) - pow(channel_w / 2 + 1, 2));
echo(clip_bbox = [chord, y_seat + rail_h + rail_clear - y_low, clip_h]);

module saddle() {
    difference() {
        intersection() {
            translate([0, -thigh_r, 0]) difference() {
                cylinder(r = thigh_r + shell_t, h = clip_h, $fn = 180);
                translate([0, 0, -1]) cylinder(r = thigh_r, h = clip_h + 2, $fn = 180);
            }
            translate([-chord / 2, y_low - 1, -1]) cube([chord, thigh_r, clip_h + 2]);
        }
        for (side = [-1, 1])
            translate([side * (chord / 2 - strap_inset) - strap_t / 2, y_low - 2, (clip_h - strap_w) / 2])
                cube([strap_t, shell_t + 10, strap_w]);
    }
}

// For assembly.scad: where the channel is (x of its centre line, y of its floor) and where its stop ends.
function clip_thigh_channel() = [0, y_seat, stop_t];

module clip_thigh() {
    difference() {
        union() {
            saddle();
            // a pad that joins the flat channel floor to the curved outer face
            translate([-channel_w / 2, y_seat - 1.5, 0]) cube([channel_w, 1.5, clip_h]);
            translate([0, y_seat, 0]) channel_block(channel_w, clip_h, stop_t);
        }
        translate([0, y_seat, 0]) detent_dimple(stop_t);
    }
}

clip_thigh();
