package sim

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strconv"
	"strings"
)

// WritePNG draws the same figure as WriteSVG into a PNG with the standard
// library only: lines, rectangles and dots are rasterised here and text uses a
// built-in 3x5 pixel font (upper case, digits and a little punctuation), which is
// coarse but keeps the image readable without a font dependency.
func WritePNG(w io.Writer, rep *Report) error {
	W, H := plotSize(rep)
	img := image.NewRGBA(image.Rect(0, 0, int(W), int(H)))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	draw(&pngCanvas{img: img}, rep)
	bw := bufio.NewWriter(w)
	if err := png.Encode(bw, img); err != nil {
		return fmt.Errorf("writing PNG: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing PNG: %w", err)
	}
	return nil
}

type pngCanvas struct{ img *image.RGBA }

func parseColor(s string) color.RGBA {
	s = strings.TrimPrefix(s, "#")
	if len(s) == 3 {
		s = string([]byte{s[0], s[0], s[1], s[1], s[2], s[2]})
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil || len(s) != 6 {
		return color.RGBA{A: 0xff}
	}
	return color.RGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 0xff}
}

func (c *pngCanvas) set(x, y int, col color.RGBA) {
	if image.Pt(x, y).In(c.img.Rect) {
		c.img.SetRGBA(x, y, col)
	}
}

func (c *pngCanvas) line(x1, y1, x2, y2 float64, s string, width float64) {
	col := parseColor(s)
	n := int(math.Max(math.Abs(x2-x1), math.Abs(y2-y1))) + 1
	r := int(math.Max(width, 1)) / 2
	for i := 0; i <= n; i++ {
		f := float64(i) / float64(n)
		x, y := int(math.Round(x1+(x2-x1)*f)), int(math.Round(y1+(y2-y1)*f))
		for dx := -r; dx <= r; dx++ {
			for dy := -r; dy <= r; dy++ {
				c.set(x+dx, y+dy, col)
			}
		}
	}
}

func (c *pngCanvas) polyline(xs, ys []float64, s string, width float64) {
	for i := 1; i < len(xs); i++ {
		c.line(xs[i-1], ys[i-1], xs[i], ys[i], s, width)
	}
}

func (c *pngCanvas) rect(x, y, w, h float64, s string) {
	col := parseColor(s)
	for py := int(math.Round(y)); py < int(math.Round(y+h)); py++ {
		for px := int(math.Round(x)); px < int(math.Round(x+math.Max(w, 1))); px++ {
			c.set(px, py, col)
		}
	}
}

func (c *pngCanvas) circle(x, y, r float64, s string) {
	col := parseColor(s)
	for dy := -r; dy <= r; dy++ {
		for dx := -r; dx <= r; dx++ {
			if dx*dx+dy*dy <= r*r {
				c.set(int(math.Round(x+dx)), int(math.Round(y+dy)), col)
			}
		}
	}
}

// font3x5 maps a rune to 5 rows of 3 pixels ('#' on).
var font3x5 = map[rune]string{
	'0': "###,#.#,#.#,#.#,###", '1': ".#.,##.,.#.,.#.,###", '2': "###,..#,###,#..,###", '3': "###,..#,.##,..#,###",
	'4': "#.#,#.#,###,..#,..#", '5': "###,#..,###,..#,###", '6': "###,#..,###,#.#,###", '7': "###,..#,.#.,.#.,.#.",
	'8': "###,#.#,###,#.#,###", '9': "###,#.#,###,..#,###",
	'A': ".#.,#.#,###,#.#,#.#", 'B': "##.,#.#,##.,#.#,##.", 'C': ".##,#..,#..,#..,.##", 'D': "##.,#.#,#.#,#.#,##.",
	'E': "###,#..,##.,#..,###", 'F': "###,#..,##.,#..,#..", 'G': ".##,#..,#.#,#.#,.##", 'H': "#.#,#.#,###,#.#,#.#",
	'I': "###,.#.,.#.,.#.,###", 'J': "..#,..#,..#,#.#,.#.", 'K': "#.#,#.#,##.,#.#,#.#", 'L': "#..,#..,#..,#..,###",
	'M': "#.#,###,###,#.#,#.#", 'N': "##.,#.#,#.#,#.#,#.#", 'O': ".#.,#.#,#.#,#.#,.#.", 'P': "##.,#.#,##.,#..,#..",
	'Q': ".#.,#.#,#.#,##.,.##", 'R': "##.,#.#,##.,#.#,#.#", 'S': ".##,#..,.#.,..#,##.", 'T': "###,.#.,.#.,.#.,.#.",
	'U': "#.#,#.#,#.#,#.#,###", 'V': "#.#,#.#,#.#,#.#,.#.", 'W': "#.#,#.#,###,###,#.#", 'X': "#.#,#.#,.#.,#.#,#.#",
	'Y': "#.#,#.#,.#.,.#.,.#.", 'Z': "###,..#,.#.,#..,###",
	'.': "...,...,...,...,.#.", ',': "...,...,...,.#.,#..", ':': "...,.#.,...,.#.,...", '-': "...,...,###,...,...",
	'+': "...,.#.,###,.#.,...", '%': "#.#,..#,.#.,#..,#.#", '/': "..#,..#,.#.,#..,#..", '(': ".#.,#..,#..,#..,.#.",
	')': ".#.,..#,..#,..#,.#.", '_': "...,...,...,...,###", '=': "...,###,...,###,...", '>': "#..,.#.,..#,.#.,#..",
	'<': "..#,.#.,#..,.#.,..#", '[': "##.,#..,#..,#..,##.", ']': ".##,..#,..#,..#,.##", '#': "#.#,###,#.#,###,#.#",
}

// text draws s with the 3x5 font at a scale that roughly matches size.
func (c *pngCanvas) text(x, y float64, s string, size float64, col, anchor string) {
	sc := max(int(math.Round(size/6)), 1)
	adv := 4 * sc
	w := float64(len([]rune(s)) * adv)
	switch anchor {
	case "middle":
		x -= w / 2
	case "end":
		x -= w
	}
	rgba := parseColor(col)
	top := int(y) - 5*sc
	for i, r := range strings.ToUpper(s) {
		g, ok := font3x5[r]
		if !ok {
			continue
		}
		for row, bits := range strings.Split(g, ",") {
			for cx, b := range bits {
				if b != '#' {
					continue
				}
				for dy := range sc {
					for dx := range sc {
						c.set(int(x)+i*adv+cx*sc+dx, top+row*sc+dy, rgba)
					}
				}
			}
		}
	}
}
