"""hipcheck.gait.references: the consensus of two references and the scoring at bout edges and disputed contacts,
on hand-made cases and on a real excerpt with both of the mobgap lab data's references (INDIP and Stereophoto)."""

from pathlib import Path

import numpy as np

from hipcheck.fusion import orient
from hipcheck.gait import IC, LEFT, RIGHT
from hipcheck.gait.events import detect_events
from hipcheck.gait.references import BoutScore, bout_overlap, consensus, score_bout

DATA = Path(__file__).parent / "data" / "mobgap"


def test_bouts_overlap_where_both_cover_the_walk():
    assert bout_overlap([[0, 100], [200, 300]], [[50, 250]]).tolist() == [[50, 100], [200, 250]]
    assert bout_overlap([[0, 100]], [[101, 200]]).shape == (0, 2)
    assert bout_overlap([[0, 100]], [[100, 200]]).tolist() == [[100, 100]]


def test_consensus_keeps_the_contacts_both_place_on_the_same_foot():
    # a: 100 L, 160 R, 220 L, 280 R, 340 L;  b: 102 L, 158 R, 240 L (20 off), 281 L (other foot), nothing at 340.
    consensus_ = consensus([100, 160, 220, 280, 340], ["left", "right", "left", "right", "left"], [[100, 340]],
                           [102, 158, 240, 281], ["left", "right", "left", "left"], [[90, 300]], agree=10, margin=10)
    assert consensus_.ic.tolist() == [101, 159]
    assert consensus_.lr.tolist() == ["left", "right"]
    # Only where both cover the walk (100-300); 340 lies outside it and is no dispute.
    assert consensus_.wb.tolist() == [[100, 300]]
    assert consensus_.disputed.tolist() == [220, 240, 280, 281]


def test_consensus_stretch_holds_its_own_edge_contacts():
    # The two references' bouts end at their own last contacts: 300 and 296; the agreed one (298) stays inside.
    consensus_ = consensus([200, 300], ["left", "right"], [[200, 300]], [203, 296], ["left", "right"], [[203, 296]],
                           agree=10, margin=10)
    assert consensus_.ic.tolist() == [202, 298]
    assert consensus_.wb.tolist() == [[202, 298]]
    assert len(consensus_.disputed) == 0


def test_a_contact_just_outside_the_bout_counts_when_it_matches_its_edge_contact():
    ref, lr = np.array([100, 160, 220]), np.array(["left", "right", "left"])
    score = score_bout([97, 161, 223], [LEFT, RIGHT, LEFT], ref, lr, 100, 220, tolerance=10, right=RIGHT)
    assert (score.tp, score.fp, score.fn) == (3, 0, 0)
    assert sorted(score.errors) == [-3, 1, 3]
    assert all(score.side_ok)
    # Unmatched contacts outside the bout are no false alarms; inside they are.
    score = score_bout([40, 130, 250], None, ref, lr, 100, 220, tolerance=10)
    assert (score.tp, score.fp, score.fn) == (0, 1, 3)
    assert score.side_ok == []


def test_contacts_near_a_disputed_one_are_neither_hits_nor_false_alarms():
    ref, lr = np.array([100, 220]), np.array(["left", "left"])
    found = [101, 160, 190]
    plain = score_bout(found, None, ref, lr, 100, 220, tolerance=10)
    assert (plain.tp, plain.fp, plain.fn) == (1, 2, 1)
    disputed = score_bout(found, None, ref, lr, 100, 220, tolerance=10, disputed=[165])
    assert (disputed.tp, disputed.fp, disputed.fn) == (1, 1, 1)
    total = BoutScore()
    total += plain
    total += disputed
    assert (total.tp, total.fp, total.fn) == (2, 3, 2)
    assert abs(total.f1() - 4 / 9) < 1e-12


def test_a_wrong_side_is_counted_as_a_hit_with_a_wrong_side():
    score = score_bout([100, 160], [RIGHT, RIGHT], [100, 160], ["left", "right"], 100, 160, tolerance=10, right=RIGHT)
    assert score.tp == 2 and sorted(score.side_ok) == [False, True]


def test_real_excerpt_against_the_references_consensus():
    """MS-001's daily-life excerpt (3000 samples): INDIP and Stereophoto agree on 27 contacts and dispute 12; ours,
    scored against what they agree on, finds nearly all of them, on the right side, within 50 ms on average."""
    d = np.load(DATA / "MS-001-Test11-Trial1-12000-15000.npz")
    stereo = np.load(DATA / "MS-001-Test11-Trial1-12000-15000-Stereophoto.npz")
    fs_hz = float(d["fs"])
    agreed = consensus(d["INDIP_ic"], d["INDIP_ic_lr"], d["INDIP_wb"], stereo["Stereophoto_ic"],
                       stereo["Stereophoto_ic_lr"], stereo["Stereophoto_wb"], agree=0.1 * fs_hz,
                       margin=int(0.1 * fs_hz))
    assert 20 <= len(agreed.ic) <= len(d["INDIP_ic"]) and len(agreed.disputed) > 0
    acc = d["acc"].astype(float)[:, [2, 1, 0]] * [1, -1, 1]
    gyr = np.radians(d["gyr_dps"].astype(float))[:, [2, 1, 0]] * [1, -1, 1]
    events = detect_events(acc, gyr, orient(acc, gyr, fs_hz), fs_hz)
    ic = events[events["kind"] == IC]
    start, end = agreed.wb[0]
    vs_consensus = score_bout(ic["sample"], ic["side"], agreed.ic, agreed.lr, start, end, 0.25 * fs_hz,
                              agreed.disputed, RIGHT)
    assert vs_consensus.f1() >= 0.9  # 0.963 now: 26 of 27 agreed contacts found, 1 false alarm
    assert np.mean(vs_consensus.side_ok) == 1.0
    assert np.abs(vs_consensus.errors).mean() / fs_hz <= 0.05
