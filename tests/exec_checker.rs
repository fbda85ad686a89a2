//! The single-active heartbeat checker used by the election tests, checked on its own.

mod exec_support;

use exec_support::{check_single_active, intervals};

#[test]
fn sequential_terms_pass() {
    let text = "3,start,100,a\n3,beat,150,a\n3,stop,200,a\n4,start,250,b\n4,beat,300,b\n";
    let all = check_single_active(text);
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].first, all[0].last), (100, 200));
    assert_eq!(all[1].identity, "b");
}

#[test]
#[should_panic(expected = "terms interleave")]
fn interleaved_terms_fail() {
    check_single_active("3,start,100,a\n4,start,150,b\n3,beat,200,a\n");
}

#[test]
#[should_panic(expected = "terms interleave")]
fn a_later_term_that_started_before_an_earlier_one_ended_fails() {
    // Term 5 starts while term 4's child still beats, even though the lines are not interleaved.
    check_single_active("4,start,100,a\n4,beat,300,a\n5,start,250,b\n");
}

#[test]
#[should_panic(expected = "two identities")]
fn one_term_under_two_identities_fails() {
    intervals("4,start,100,a\n4,beat,300,b\n");
}

#[test]
fn the_fence_rejects_writes_of_an_older_term() {
    use exec_support::fence;
    // Term 3 resumes after a pause and writes once more after term 4 started.
    let text = "3,start,100,a\n3,beat,150,a\n4,start,900,b\n3,beat,950,a\n4,beat,1000,b\n";
    let (accepted, rejected) = fence(text);
    assert_eq!(rejected, 1);
    check_single_active(&accepted);
}
