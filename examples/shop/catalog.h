// The catalog: the three products the shop sells, fixed in the code (the
// demo is about carts and orders, not about managing products). Immutable;
// any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace shop {

struct Product {
  std::string_view id;  // "gadget"; what carts and orders hold
  std::string_view name;
  int64_t price_cents;
};

std::span<const Product> Catalog();

// The product with this id, or nullptr.
const Product* FindProduct(std::string_view id);

}  // namespace shop
