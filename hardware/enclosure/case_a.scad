// hipcheck case, build (a): Seeed XIAO ESP32S3 + LSM6DSOX breakout (Adafruit 4438) + 350 mAh LiPo + motor driver.
// Two printed parts: `part = "case"` (a cup open toward the lid, the rail on its back) and `part = "lid"`.
// Inside, from the back wall (body side) to the lid: the IMU breakout flat on the back wall, parts toward the lid,
// its silk-screen y arrow up (firmware/boards/xiao_esp32s3.py); the cell standing up; the XIAO standing up with
// its USB-C in the bottom slot. The coin motor and the driver go on the lid's inner face, away from the IMU.
// Print standing on the bottom face, the lid outer face down; no supports.
// Render: openscad -o case_a.stl case_a.scad ; openscad -D 'part="lid"' -o lid_a.stl case_a.scad
include <common.scad>

part = "case";

wall = 2;           // side, top and bottom walls
back_t = 2;         // back wall (the rail stands on it)
inner_w = 30;       // cavity across (x)
inner_d = 18;       // cavity depth (y), back wall to lid
inner_h = 42;       // cavity height (z)
corner_r = 3;       // outer corner radius seen from the front
lid_t = 2;          // lid plate
lip_h = 2.5;        // the lid's lip reaching into the cavity
lip_wall = 1.2;
fit_clear = 0.2;    // play between lip and cavity on each side
arrow_h = 0.6;      // depth of the "up" arrow engraved in the lid

usb_w = 11;         // USB-C slot in the bottom wall: across (x)
usb_t = 5;          //   depth (y)
usb_y = 13.5;       //   centre, from the back wall's inner face
sw_l = 9.5;         // slide-switch slot in the +x wall (the wearer's left): height (z)
sw_t = 4.5;         //   depth (y)
sw_z = 30;          //   centre, from the cavity floor
sw_y = 12;          //   centre, from the back wall's inner face

// What must fit: the cavity must hold these, or the model refuses to render.
imu_board = [25.4, 17.8, 4.2];   // breakout with its parts (either way up)
cell = [20, 5.2, 36];            // 350 mAh cell standing up: x, y (thickness), z
xiao = [17.8, 4.5, 21];          // XIAO standing up, USB-C down
assert(inner_w >= max(imu_board[1], cell[0], xiao[0]) + 1, "inner_w is too small for the parts");
assert(inner_h >= max(imu_board[0], cell[2], xiao[2]) + 2, "inner_h is too small for the parts");
assert(inner_d >= imu_board[2] + cell[1] + xiao[1] + 3, "inner_d is too small for the stack");

inner = [inner_w, inner_d, inner_h];
outer_w = inner_w + 2 * wall;
holes = [
    [[outer_w / 2 - usb_w / 2, back_t + usb_y - usb_t / 2, -1], [usb_w, usb_t, wall + 2]],
    [[outer_w - wall - 1, back_t + sw_y - sw_t / 2, wall + sw_z - sw_l / 2], [wall + 2, sw_t, sw_l]],
];
echo(case_bbox = [outer_w, back_t + inner_d + rail_h + detent_h, inner_h + 2 * wall]);
echo(lid_bbox = [outer_w, lid_t + lip_h, inner_h + 2 * wall]);

// For assembly.scad: the outer size without the rail, and the part itself.
function case_a_outer() = [outer_w, back_t + inner_d, inner_h + 2 * wall];

module case_a(which) {
    if (which == "case") case_shell(inner, wall, back_t, corner_r, holes);
    else if (which == "lid") case_lid(inner, wall, corner_r, lid_t, lip_h, lip_wall, fit_clear, arrow_h);
    else assert(false, str("part must be \"case\" or \"lid\", not ", which));
}

case_a(part);
