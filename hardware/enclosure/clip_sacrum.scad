// hipcheck sacrum clip: hooks over the belt at the back, so that the case hangs over the sacrum (S1-S2, midline);
// worn the same way on the belt at the front for the bridge. A U over the belt's top edge: the back plate rests
// on the body, the front plate carries the channel that either case slides down into until it clicks.
// Print standing as worn (z up), no supports. Render: openscad -o clip_sacrum.stl clip_sacrum.scad
include <common.scad>

clip_w = 40;        // across (x)
clip_h = 72;        // height (z): the case hangs below the belt
front_t = 3;        // front plate (carries the channel)
back_t = 2.5;       // back plate (against the body)
belt_t = 4.5;       // gap for the belt's thickness
belt_w = 40;        // the widest belt the loop takes
bridge_t = 3;       // the bend over the belt's top edge
grip_r = 1.2;       // the bead at the back plate's lower edge that keeps the clip on the belt
corner_r = 4;
channel_wall = 3;   // material beside the channel
stop_t = 3;         // the channel's closed lower end

channel_w = rail_top_w + 2 * rail_clear + 2 * channel_wall;
loop_h = belt_w + 4;
front_y = back_t + belt_t;              // the front plate's body-side face
face_y = front_y + front_t;             // its outer face: the channel floor
assert(channel_w <= clip_w, "the channel is wider than the clip");
assert(loop_h + bridge_t <= clip_h, "the belt loop is taller than the clip");
echo(clip_bbox = [clip_w, face_y + rail_h + rail_clear, clip_h]);

// For assembly.scad: where the channel is (x of its centre line, y of its floor) and where its stop ends.
function clip_sacrum_channel() = [clip_w / 2, face_y, stop_t];

module clip_sacrum() {
    // back plate, from the top down over the belt, with the grip bead on its inner face
    translate([0, 0, clip_h - loop_h - bridge_t]) rounded_block([clip_w, back_t, loop_h + bridge_t], corner_r);
    translate([0, back_t, clip_h - loop_h - bridge_t + grip_r + 1]) rotate([0, 90, 0])
        cylinder(r = grip_r, h = clip_w, $fn = 24);
    // the bridge over the belt's top edge
    translate([0, 0, clip_h - bridge_t]) rounded_block([clip_w, face_y, bridge_t], min(corner_r, bridge_t / 2));
    // front plate with the channel
    difference() {
        union() {
            translate([0, front_y, 0]) rounded_block([clip_w, front_t, clip_h], corner_r);
            translate([clip_w / 2, face_y, 0]) channel_block(channel_w, clip_h, stop_t);
        }
        translate([clip_w / 2, face_y, 0]) detent_dimple(stop_t);
    }
}

clip_sacrum();
