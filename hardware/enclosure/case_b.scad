// hipcheck case, build (b): Arduino Nano RP2040 Connect (LSM6DSOX on the board) + PowerBoost 500C + 350 mAh LiPo
// + motor driver. Two printed parts: `part = "case"` and `part = "lid"`.
// Inside, from the back wall (body side) to the lid: the Nano flat on the back wall, parts toward the lid, USB
// connector down in the bottom slot (firmware/boards/nano_rp2040_connect.py: the mounting its AXES assume); the
// cell; the PowerBoost with its micro-USB (charging) in the second bottom slot. The coin motor and the driver go
// on the lid's inner face.
// Print standing on the bottom face, the lid outer face down; no supports.
// Render: openscad -o case_b.stl case_b.scad ; openscad -D 'part="lid"' -o lid_b.stl case_b.scad
include <common.scad>

part = "case";

wall = 2;
back_t = 2;
inner_w = 31;
inner_d = 20;
inner_h = 48;
corner_r = 3;
lid_t = 2;
lip_h = 2.5;
lip_wall = 1.2;
fit_clear = 0.2;
arrow_h = 0.6;      // depth of the "up" arrow engraved in the lid

nano_usb_w = 10;    // the Nano's micro-USB: slot in the bottom wall, across (x)
nano_usb_t = 5;     //   depth (y)
nano_usb_y = 4.5;   //   centre, from the back wall's inner face
boost_usb_w = 10;   // the PowerBoost's micro-USB (charging): across
boost_usb_t = 5;    //   depth
boost_usb_y = 16.5; //   centre, from the back wall's inner face
sw_l = 9.5;         // slide-switch slot in the +x wall (the wearer's left)
sw_t = 4.5;
sw_z = 36;
sw_y = 11;

nano = [18, 5.6, 45];            // Nano standing up, with its parts
cell = [29, 4.75, 36];           // 500 mAh cell standing up
boost = [22.9, 5.0, 36.2];       // PowerBoost 500C standing up, with its USB and JST sockets
assert(inner_w >= max(nano[0], cell[0], boost[0]) + 1, "inner_w is too small for the parts");
assert(inner_h >= max(nano[2], cell[2], boost[2]) + 2, "inner_h is too small for the parts");
assert(inner_d >= nano[1] + cell[1] + boost[1] + 3, "inner_d is too small for the stack");

inner = [inner_w, inner_d, inner_h];
outer_w = inner_w + 2 * wall;
holes = [
    [[outer_w / 2 - nano_usb_w / 2, back_t + nano_usb_y - nano_usb_t / 2, -1], [nano_usb_w, nano_usb_t, wall + 2]],
    [[outer_w / 2 - boost_usb_w / 2, back_t + boost_usb_y - boost_usb_t / 2, -1], [boost_usb_w, boost_usb_t, wall + 2]],
    [[outer_w - wall - 1, back_t + sw_y - sw_t / 2, wall + sw_z - sw_l / 2], [wall + 2, sw_t, sw_l]],
];
echo(case_bbox = [outer_w, back_t + inner_d + rail_h + detent_h, inner_h + 2 * wall]);
echo(lid_bbox = [outer_w, lid_t + lip_h, inner_h + 2 * wall]);

// For assembly.scad: the outer size without the rail, and the part itself.
function case_b_outer() = [outer_w, back_t + inner_d, inner_h + 2 * wall];

module case_b(which) {
    if (which == "case") case_shell(inner, wall, back_t, corner_r, holes);
    else if (which == "lid") case_lid(inner, wall, corner_r, lid_t, lip_h, lip_wall, fit_clear, arrow_h);
    else assert(false, str("part must be \"case\" or \"lid\", not ", which));
}

case_b(part);
