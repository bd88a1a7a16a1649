package main

import "testing"

func TestGreetings(t *testing.T) {
	got := greetings([]string{"ada", "grace hopper"})
	want := "hello, ADA!\nhello, GRACE HOPPER!\n"
	if got != want {
		t.Fatalf("greetings: got %q, want %q", got, want)
	}
}

func TestNoNamesNoGreetings(t *testing.T) {
	if got := greetings(nil); got != "" {
		t.Fatalf("greetings(nil): got %q", got)
	}
}
