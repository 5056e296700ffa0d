package forecast

import (
	"slices"
	"testing"
)

func TestSearch(t *testing.T) {
	r := lcg(5)
	for n := range 40 {
		a := make([]float32, n)
		for i := range a {
			a[i] = float32(int(r.float() * 10))
		}
		slices.Sort(a)
		for x := float32(-1); x <= 11; x += 0.5 {
			want, _ := slices.BinarySearch(a, x)
			if got := search(a, x); got != want {
				t.Fatalf("search(%v, %v) = %d, want %d", a, x, got, want)
			}
		}
	}
}
