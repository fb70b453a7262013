// hipcheck enclosure: what the cases and the clips share. Units: mm.
// Frame of every part as worn on the sacrum: x across (+x = the wearer's left), y depth (-y toward the body, i.e.
// anterior), z up (superior). The firmware's board frame is then x = -y here, y = +x, z = +z.
// A case carries a vertical dovetail rail on its back (the body side); each clip carries the matching channel,
// open at the top and closed at the bottom, so the case slides down into any clip and clicks on a detent.

$fn = 48;

// The rail and channel (one definition: every part includes this file).
rail_base_w = 12;    // rail width where it meets the case's back wall
rail_top_w = 16;     // rail width at its face: wider than the base, so the rail cannot lift out of the channel
rail_h = 3;          // how far the rail stands off the back wall
rail_clear = 0.3;    // play between rail and channel on each side (FDM printers: 0.2-0.4)
detent_r = 1.2;      // radius of the click bump on the rail's face (and of the dimple in the channel floor)
detent_h = 0.5;      // height of the bump
detent_from_bottom = 8; // the bump sits this far above the rail's lower end (the dimple as far above the stop)

// A box of `size` = [x, y, z] from the origin with the four edges parallel to y rounded (radius r).
module rounded_block(size, r) {
    hull()
        for (x = [r, size[0] - r], z = [r, size[2] - r])
            translate([x, 0, z]) rotate([-90, 0, 0]) cylinder(r = r, h = size[1]);
}

// The dovetail's cross-section in x-y, centred on x = 0, its base on y = 0 and its face at y = -h.
module dovetail_profile(base_w, top_w, h) {
    polygon([[-base_w / 2, 0], [base_w / 2, 0], [top_w / 2, -h], [-top_w / 2, -h]]);
}

// The rail on a case's back wall (y = 0), along z from 0 to len, with the click bump near its lower end.
module rail(len) {
    linear_extrude(height = len) dovetail_profile(rail_base_w, rail_top_w, rail_h);
    translate([0, -rail_h, detent_from_bottom]) detent_bump();
}

// A spherical cap of height detent_h on the plane y = 0, bulging toward -y.
module detent_bump() {
    d = detent_r;
    // a sphere whose cap above the plane (toward -y) is detent_h high
    sphere_r = (d * d + detent_h * detent_h) / (2 * detent_h);
    intersection() {
        translate([0, sphere_r - detent_h, 0]) sphere(r = sphere_r, $fn = 24);
        translate([-d - 1, -detent_h - 1, -d - 1]) cube([2 * d + 2, detent_h + 1, 2 * d + 2]);
    }
}

// The channel block of a clip: `w` wide, `len` tall, standing on the plane y = 0 toward +y by rail_h + rail_clear,
// with the dovetail slot (rail + play) cut from the top down to `stop` above its bottom. The slot's floor is the
// plane y = 0 (the clip's face), where the dimple for the detent is cut.
module channel_block(w, len, stop) {
    depth = rail_h + rail_clear;
    difference() {
        translate([-w / 2, 0, 0]) cube([w, depth, len]);
        // the case's back wall lies on y = depth; its rail points to -y, down to the floor (y = 0)
        translate([0, depth, stop])
            linear_extrude(height = len)
                dovetail_profile(rail_base_w + 2 * rail_clear, rail_top_w + 2 * rail_clear, depth + 0.01);
    }
}

// The dimple matching the detent bump, in the channel floor (y = 0) of a channel whose stop ends at z = stop.
module detent_dimple(stop) {
    translate([0, 0.01, stop + detent_from_bottom])
        rotate([90, 0, 0]) cylinder(r = detent_r + 0.2, h = detent_h + 0.3, $fn = 24);
}

// A case: a cup with the cavity `inner` = [x, y, z] open toward +y, walls `wall`, back wall `back_t`, the rail
// on its back (y = 0) and `holes` cut away: each [[x, y, z] of the lower corner, [x, y, z] size] in case
// coordinates.
module case_shell(inner, wall, back_t, corner_r, holes = []) {
    outer = [inner[0] + 2 * wall, back_t + inner[1], inner[2] + 2 * wall];
    difference() {
        rounded_block(outer, corner_r);
        translate([wall, back_t, wall]) rounded_block([inner[0], inner[1] + 1, inner[2]], max(corner_r - wall, 0.5));
        for (h = holes) translate(h[0]) cube(h[1]);
    }
    translate([outer[0] / 2, 0, 0]) rail(outer[2]);
}

// Its lid: a plate (y from 0 to lid_t) with a lip (y from -lip_h to 0) that presses into the cavity, and an arrow
// engraved arrow_h deep in its outer face, pointing up (+z, superior when worn). Printed outer face down.
module case_lid(inner, wall, corner_r, lid_t, lip_h, lip_wall, fit_clear, arrow_h) {
    outer = [inner[0] + 2 * wall, inner[2] + 2 * wall];
    lip = [inner[0] - 2 * fit_clear, inner[2] - 2 * fit_clear];
    difference() {
        rounded_block([outer[0], lid_t, outer[1]], corner_r);
        translate([outer[0] / 2, lid_t - arrow_h, outer[1] * 0.62])
            rotate([-90, 0, 0]) linear_extrude(height = arrow_h + 1) {
                polygon([[-6, 5], [6, 5], [0, -5]]);  // the tip at 2D -y, which the rotation turns to +z
                translate([-2, 4]) square([4, 8]);
            }
    }
    translate([wall + fit_clear, -lip_h, wall + fit_clear])
        difference() {
            rounded_block([lip[0], lip_h + 0.01, lip[1]], 1);
            translate([lip_wall, -1, lip_wall]) rounded_block([lip[0] - 2 * lip_wall, lip_h + 2, lip[1] - 2 * lip_wall], 0.5);
        }
}
