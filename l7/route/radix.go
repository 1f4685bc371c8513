package route

import (
	"bytes"
	"slices"
)

// builder is a pointer-linked radix tree used while a Table is built; tree.add flattens it.
type builder struct {
	root *bnode
}

type bnode struct {
	label    string // edge label from the parent; "" only at the root
	route    int32  // spec index whose prefix ends here, or -1
	children []*bnode
}

func newBuilder() *builder { return &builder{root: &bnode{route: -1}} }

// insert adds prefix for route r. Duplicate prefixes are rejected by New before they get here.
func (b *builder) insert(prefix string, r int32) {
	n := b.root
	key := prefix
	for key != "" {
		var c *bnode
		ci := -1
		for i, ch := range n.children {
			if ch.label[0] == key[0] {
				c, ci = ch, i
				break
			}
		}
		if c == nil {
			n.children = append(n.children, &bnode{label: key, route: r})
			return
		}
		l := commonPrefixLen(c.label, key)
		if l < len(c.label) {
			// Split the edge: the shared part becomes a node of its own.
			mid := &bnode{label: c.label[:l], route: -1, children: []*bnode{c}}
			c.label = c.label[l:]
			n.children[ci] = mid
			c = mid
		}
		n, key = c, key[l:]
	}
	n.route = r
}

func commonPrefixLen(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// tree holds every host's radix tree flattened into arrays: nodes reference their label in one
// string and their children as a contiguous run of nodes, so a lookup chases no pointers and the
// garbage collector has almost nothing to scan.
type tree struct {
	nodes  []node
	first  []byte // first[i] is the first byte of nodes[i]'s label; children are scanned here
	labels []byte // grows while trees are added; finish freezes it into arena
	arena  string
}

type node struct {
	labelOff uint32
	labelLen uint32
	route    int32  // spec index, or -1
	child    uint32 // index of the first child in nodes
	nchild   uint32
}

// add flattens b into t (breadth-first, children sorted by first byte) and returns its root index.
func (t *tree) add(b *builder) int32 {
	root := int32(len(t.nodes))
	queue := []*bnode{b.root}
	t.push(b.root)
	for i := 0; i < len(queue); i++ {
		n := queue[i]
		slices.SortFunc(n.children, func(x, y *bnode) int { return int(x.label[0]) - int(y.label[0]) })
		me := int(root) + i
		t.nodes[me].child = uint32(len(t.nodes))
		t.nodes[me].nchild = uint32(len(n.children))
		for _, c := range n.children {
			t.push(c)
			queue = append(queue, c)
		}
	}
	return root
}

// finish freezes the labels once every tree is added.
func (t *tree) finish() {
	t.arena = string(t.labels)
	t.labels = nil
}

func (t *tree) push(n *bnode) {
	t.nodes = append(t.nodes, node{
		labelOff: uint32(len(t.labels)),
		labelLen: uint32(len(n.label)),
		route:    n.route,
	})
	var f byte
	if n.label != "" {
		f = n.label[0]
	}
	t.first = append(t.first, f)
	t.labels = append(t.labels, n.label...)
}

// match returns the route of the longest prefix of path in the tree at root, or -1.
func (t *tree) match(root int32, path []byte) int32 {
	best := int32(-1)
	i := uint32(root)
	for {
		n := &t.nodes[i]
		label := t.arena[n.labelOff : n.labelOff+n.labelLen]
		if len(path) < len(label) || string(path[:len(label)]) != label {
			return best
		}
		path = path[len(label):]
		if n.route >= 0 {
			best = n.route
		}
		if len(path) == 0 || n.nchild == 0 {
			return best
		}
		i = t.child(n, path[0])
		if i == 0 {
			return best // index 0 is a root, never a child
		}
	}
}

// child returns the index of n's child whose label starts with c, or 0 when there is none.
func (t *tree) child(n *node, c byte) uint32 {
	kids := t.first[n.child : n.child+n.nchild]
	if len(kids) <= 8 {
		// Most nodes fan out to a few children; a plain loop beats IndexByte's call set-up.
		for j, k := range kids {
			if k == c {
				return n.child + uint32(j)
			}
		}
		return 0
	}
	if j := bytes.IndexByte(kids, c); j >= 0 {
		return n.child + uint32(j)
	}
	return 0
}
