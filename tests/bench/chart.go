package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

var barColors = map[int]color.RGBA{
	1:  {0x9e, 0xc5, 0xe8, 0xff},
	8:  {0x3d, 0x85, 0xc6, 0xff},
	32: {0x0b, 0x39, 0x6b, 0xff},
}

// chart draws horizontal bars of ops/s, one group per benchmark, one bar per concurrency.
func chart(path string, results []Result) error {
	var names []string
	seen := map[string]bool{}
	maxOps := 1.0
	for _, r := range results {
		if !seen[r.Name] {
			seen[r.Name] = true
			names = append(names, r.Name)
		}
		maxOps = max(maxOps, r.OpsPerSec)
	}
	const (
		left, right, top, bar, gap = 330, 90, 40, 9, 8
		width                      = 1200
	)
	height := top + len(names)*(len(concurrencies)*bar+gap) + 30
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	text := func(x, y int, s string) {
		d := font.Drawer{Dst: img, Src: image.Black, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	text(left, 20, "ops/s by concurrency (light to dark: c=1, 8, 32)")
	y := top
	for _, name := range names {
		text(8, y+len(concurrencies)*bar/2+5, name)
		for _, c := range concurrencies {
			ops := 0.0
			for _, r := range results {
				if r.Name == name && r.Concurrency == c {
					ops = r.OpsPerSec
				}
			}
			w := int(ops / maxOps * float64(width-left-right))
			draw.Draw(img, image.Rect(left, y, left+w, y+bar-1), &image.Uniform{barColors[c]}, image.Point{}, draw.Src)
			text(left+w+4, y+bar-1, fmt.Sprintf("%.0f", ops))
			y += bar
		}
		y += gap
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
}
