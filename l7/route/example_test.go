package route_test

import (
	"fmt"
	"sync/atomic"

	"example.com/edge/l7/route"
)

// The proxy builds a table from the configured routes, keeps it in an atomic.Pointer that reloads
// replace, and on each request looks the route up with the Host header, path and method bytes.
func ExampleTable_Lookup() {
	specs := []route.Spec{
		{Host: "example.com", Prefix: "/auth/"},
		{Host: "example.com", Prefix: "/app/", Methods: []string{"GET", "POST", "PUT", "DELETE"}},
		{Host: "*", Prefix: "/"},
	}
	tab, err := route.New(specs)
	if err != nil {
		fmt.Println(err)
		return
	}
	var routes atomic.Pointer[route.Table]
	routes.Store(tab)

	for _, r := range []struct{ host, path, method string }{
		{"Example.com:8080", "/app/dashboard", "GET"},
		{"example.com", "/app/dashboard", "PATCH"},
		{"example.com", "/favicon.ico", "GET"},
	} {
		idx, st := routes.Load().Lookup([]byte(r.host), []byte(r.path), []byte(r.method))
		switch st {
		case route.Matched:
			fmt.Printf("%s %s%s -> routes[%d]\n", r.method, r.host, r.path, idx)
		case route.MethodNotAllowed:
			fmt.Printf("%s %s%s -> 405, Allow: %s\n", r.method, r.host, r.path, routes.Load().AppendAllow(nil, idx))
		case route.NotFound:
			fmt.Printf("%s %s%s -> 404\n", r.method, r.host, r.path)
		}
	}

	_, err = route.New(append(specs, route.Spec{Host: "EXAMPLE.COM", Prefix: "/app/"}, route.Spec{Prefix: "app"}))
	fmt.Println(err)
	// Output:
	// GET Example.com:8080/app/dashboard -> routes[1]
	// PATCH example.com/app/dashboard -> 405, Allow: GET, POST, PUT, DELETE
	// GET example.com/favicon.ico -> routes[2]
	// route: routes[3]: duplicate of routes[1] (host "example.com", prefix "/app/")
	// route: routes[4].prefix: "app" must start with "/"
}
